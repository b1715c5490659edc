"""Block devices as udev and sysfs describe them, live (pyudev) or from a recorded machine.

Record a machine (a PC booted from the stick, a QEMU guest) with

    python3 -m recovery.sys.udev record > tests/data/udev/<machine>.json

Recording format (JSON, one object; keep it this simple, tests and the QEMU guests share it):

    {
      "format": 1,
      "comment": "free text: where and how this was recorded",
      "devices": [ {<one block device>}, ... ],
      "mountinfo": "<lines of /proc/self/mountinfo, block-backed mounts only>"
    }

Each device is a flat dict of strings:
- every udev property, upper case, as `udevadm info` prints them: DEVNAME, DEVTYPE ("disk" or
  "partition"), MAJOR, MINOR, DEVPATH, ID_SERIAL, ID_SERIAL_SHORT, ID_WWN, ID_PATH, ID_BUS,
  ID_MODEL, ID_MODEL_ENC, ID_VENDOR, ID_CDROM, ID_FS_TYPE, ID_FS_LABEL, ID_FS_UUID,
  ID_PART_ENTRY_UUID/TYPE/NAME/NUMBER/OFFSET/SIZE, ID_PART_TABLE_TYPE, ...;
- sysfs attributes, lower case, by their path below the device's sysfs directory, only when
  present: "size", "start" (both in 512-byte units, whatever the sector size), "partition",
  "removable", "ro", "queue/logical_block_size", "queue/physical_block_size",
  "loop/backing_file", "loop/offset", "serial", "wwid", "device/model", "device/serial",
  "device/vendor";
- two keys derived by the recorder: "parent" (the DEVNAME of a partition's disk) and
  "ancestor_subsystems" (comma-separated subsystems from the device up, e.g. "nvme,pci").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from recovery.errors import SourceError
from recovery.sys.mounts import Mount, block_backed, parse_mountinfo, read_mounts
from recovery.sys.run import run

RECORD_FORMAT = 1

SYSFS_ATTRIBUTES = (
    "size", "start", "partition", "removable", "ro", "queue/logical_block_size",
    "queue/physical_block_size", "loop/backing_file", "loop/offset", "serial", "wwid",
    "device/model", "device/serial", "device/vendor",
)


class UdevSource(Protocol):
    """Where the disk listing gets its facts: live udev, or a recorded machine in tests."""

    def block_devices(self) -> list[dict[str, str]]: ...


@runtime_checkable
class MountSource(Protocol):
    """A source that also knows its machine's mount table (recordings do)."""

    def mount_table(self) -> list[Mount]: ...


def _device_record(device: Any) -> dict[str, str]:
    record = {str(k): str(v) for k, v in device.properties.items()}
    for name in SYSFS_ATTRIBUTES:
        try:
            value = device.attributes.get(name)
        except OSError:
            value = None
        if value is not None:
            record[name] = value.decode(errors="replace").strip()
    if record.get("DEVTYPE") == "partition":
        parent = device.find_parent("block", "disk")
        if parent is not None and parent.device_node:
            record["parent"] = str(parent.device_node)
    subsystems = [a.subsystem for a in device.ancestors if a.subsystem]
    record["ancestor_subsystems"] = ",".join(subsystems)
    return record


class LiveUdev:
    """This machine's block devices, from the udev database via pyudev."""

    def block_devices(self) -> list[dict[str, str]]:
        import pyudev  # imported here so recorded machines work where pyudev is absent

        context = pyudev.Context()
        return [_device_record(d) for d in context.list_devices(subsystem="block")]

    def mount_table(self) -> list[Mount]:
        return read_mounts()


class UdevSnapshot(LiveUdev):
    """This machine's block devices read once and reused: one step that asks several
    questions (which disk is this, does it hold the store) sees one consistent machine and
    pays for one udev walk (about 50 ms each here, three per capture step before)."""

    def __init__(self) -> None:
        self._devices: list[dict[str, str]] | None = None

    def block_devices(self) -> list[dict[str, str]]:
        if self._devices is None:
            self._devices = super().block_devices()
        return self._devices


class RecordedUdev:
    """A machine recorded with `python3 -m recovery.sys.udev record`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise SourceError(f"Recorded machine {self.path} cannot be read: {exc}.",
                              "Record it again with 'python3 -m recovery.sys.udev record'."
                              ) from exc
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise SourceError(f"Recorded machine {self.path} is not in format {RECORD_FORMAT}.",
                              "Record it again with 'python3 -m recovery.sys.udev record'.")
        self.comment = str(data.get("comment", ""))
        self._devices = [{str(k): str(v) for k, v in d.items()} for d in data["devices"]]
        self._mountinfo = str(data.get("mountinfo", ""))

    def block_devices(self) -> list[dict[str, str]]:
        return [dict(d) for d in self._devices]

    def mount_table(self) -> list[Mount]:
        return parse_mountinfo(self._mountinfo)


def record_machine(comment: str = "") -> dict[str, object]:
    """This machine's block devices and block-backed mounts, in the recording format."""
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    lines = [line for line in mountinfo if block_backed(parse_mountinfo(line))]
    return {"format": RECORD_FORMAT, "comment": comment,
            "devices": LiveUdev().block_devices(), "mountinfo": "\n".join(lines) + "\n"}


def refresh(nodes: Sequence[Path]) -> None:
    """Make udev re-probe these devices (after mkfs or a table change) and wait for it."""
    if nodes:
        run(["udevadm", "trigger", "--action=change", "--settle", *map(str, nodes)])


def settle() -> None:
    run(["udevadm", "settle", "--timeout=30"], check=False)


class BlockWatcher:
    """A running hot-plug watcher; call `stop()` to end it (idempotent)."""

    def __init__(self, observer: Any) -> None:
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer = None


def watch_block_devices(callback: Callable[[str, str], None]) -> BlockWatcher:
    """Call `callback(action, node)` ("add", "remove", "change") for each block device event.

    The callback runs on the watcher's own thread: a TUI must hand it over to its event loop
    (e.g. `app.call_from_thread`).
    """
    import pyudev

    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    monitor.filter_by("block")
    # Listen before returning, so that no event between this call and the thread start is lost.
    monitor.start()

    def deliver(device: Any) -> None:
        if device.device_node:
            callback(str(device.action), str(device.device_node))

    observer = pyudev.MonitorObserver(monitor, callback=deliver, name="block-watcher")
    observer.daemon = True
    observer.start()
    return BlockWatcher(observer)


def main(argv: list[str]) -> int:
    if argv[:1] != ["record"]:
        print("usage: python3 -m recovery.sys.udev record [COMMENT] > machine.json",
              file=sys.stderr)
        return 2
    json.dump(record_machine(" ".join(argv[1:])), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
