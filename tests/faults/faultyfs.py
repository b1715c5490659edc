"""A FUSE file system that serves one disk-image file and fails chosen reads and writes.

This kernel has no device-mapper (dm-error, dm-flakey) and no nbd, so a failing or unplugged
drive is simulated here: the mount point holds `disk.img` (the backing image, read-write)
and `control` (JSON). Writing a list of faults to `control` arms them; reading it returns the
faults with how often each struck and where first. A loop device attached to `disk.img`
turns every injected error into a real kernel block-I/O error on /dev/loopN.

Files are opened with FUSE direct_io so that no page cache sits between the kernel and this
process: every read and write of the loop device reaches the fault rules.

Run as a separate process (the engine under test must not share a GIL and a thread pool
with the daemon that serves its I/O):  python3 faultyfs.py BACKING_IMAGE MOUNTPOINT
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from recovery.sys.run import run

Op = Literal["read", "write", "any"]
_ARMED = ("op", "start", "end", "error", "after_bytes", "delay")  # what `arm` sends
DISK = "/disk.img"
CONTROL = "/control"


@dataclass
class Fault:
    """Fail `op` on bytes [start, end) with `error` once `after_bytes` of `op` went through.

    `after_bytes` counts from when the fault is armed, anywhere on the disk: "the drive is
    pulled out after 50 MiB were written" is Fault("any", error="ENODEV", after_bytes=50 MiB).
    """

    op: Op = "read"
    start: int = 0
    end: int | None = None  # None: to the end of the disk
    error: str = "EIO"  # errno name: EIO, ENODEV, ENXIO, ENOSPC
    after_bytes: int = 0
    delay: float = 0.0  # > 0: a weak area, each request takes this long and then succeeds
    # Filled in by the daemon:
    passed_bytes: int = 0
    hits: int = 0
    first_hit: int | None = None

    def covers(self, op: str, offset: int, length: int) -> bool:
        if self.op not in (op, "any") or self.passed_bytes < self.after_bytes:
            return False
        end = self.end if self.end is not None else offset + length
        return offset < end and offset + length > self.start

    def unplugged(self, op: str) -> bool:
        """Armed over the whole disk: even a cache flush fails, as on a drive pulled out."""
        return (self.op in (op, "any") and self.start == 0 and self.end is None
                and self.passed_bytes >= self.after_bytes)

    def errno_value(self) -> int:
        value: int = getattr(errno, self.error)
        return value


@dataclass
class FaultState:
    faults: list[Fault] = field(default_factory=list)
    bytes_read: int = 0
    bytes_written: int = 0
    failures: int = 0

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=1) + "\n").encode()


class FaultyDisk:
    """The mfusepy Operations: one image file, one control file, nothing else."""

    use_ns = True

    def __init__(self, backing: str) -> None:
        self._fd = os.open(backing, os.O_RDWR | os.O_CLOEXEC)
        self._guard = threading.Lock()
        self._state = FaultState()
        self._control_writes: dict[int, bytearray] = {}
        self._next_handle = 1

    # --- metadata ------------------------------------------------------------------------
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        now = int(os.fstat(self._fd).st_mtime_ns)
        base = {"st_uid": 0, "st_gid": 0, "st_atime": now, "st_mtime": now, "st_ctime": now}
        if path == "/":
            return {**base, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == DISK:
            return {**base, "st_mode": stat.S_IFREG | 0o644, "st_nlink": 1,
                    "st_size": os.fstat(self._fd).st_size}
        if path == CONTROL:
            with self._guard:
                size = len(self._state.to_json())
            return {**base, "st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": size}
        raise _error(errno.ENOENT)

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", DISK[1:], CONTROL[1:]]

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 0, "f_bfree": 0,
                "f_bavail": 0, "f_namemax": 255}

    def open(self, path: str, fi: Any) -> int:
        if path not in (DISK, CONTROL):
            raise _error(errno.ENOENT)
        fi.direct_io = 1
        with self._guard:
            fi.fh = self._next_handle
            self._next_handle += 1
        return 0

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        if path == CONTROL:
            return 0  # the control file is replaced whole on flush
        raise _error(errno.EPERM)  # a disk does not change size

    # --- data ----------------------------------------------------------------------------
    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        if path == CONTROL:
            with self._guard:
                return self._state.to_json()[offset:offset + size]
        size = max(0, min(size, os.fstat(self._fd).st_size - offset))
        self._check("read", offset, size)
        return os.pread(self._fd, size, offset)

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        if path == CONTROL:
            with self._guard:
                buffer = self._control_writes.setdefault(fi.fh, bytearray())
                buffer[offset:offset + len(data)] = data
            return len(data)
        if offset + len(data) > os.fstat(self._fd).st_size:
            raise _error(errno.ENOSPC)
        self._check("write", offset, len(data))
        return os.pwrite(self._fd, data, offset)

    def flush(self, path: str, fi: Any) -> int:
        if path == CONTROL:
            with self._guard:
                text = self._control_writes.pop(fi.fh, None)
                if text is not None:
                    self._arm(bytes(text))
        return 0

    def release(self, path: str, fi: Any) -> int:
        with self._guard:
            self._control_writes.pop(fi.fh, None)
        return 0

    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        if path == DISK:
            with self._guard:
                for fault in self._state.faults:
                    if fault.unplugged("write"):
                        fault.hits += 1
                        raise _error(fault.errno_value())
            os.fsync(self._fd)
        return 0

    def _arm(self, text: bytes) -> None:
        try:
            document = json.loads(text or b"{}")
            faults = [Fault(**{k: v for k, v in item.items() if k in _ARMED})
                      for item in document.get("faults", [])]
            for fault in faults:
                fault.errno_value()
        except (ValueError, TypeError, AttributeError) as exc:
            raise _error(errno.EINVAL) from exc
        self._state = FaultState(faults=faults)

    def _check(self, op: str, offset: int, length: int) -> None:
        """Raise the first armed fault that covers the request (or wait, for a slow one);
        count what went through."""
        delay = 0.0
        with self._guard:
            state = self._state
            for fault in state.faults:
                if fault.covers(op, offset, length):
                    fault.hits += 1
                    if fault.first_hit is None:
                        fault.first_hit = max(offset, fault.start)
                    if fault.delay > 0:
                        delay = max(delay, fault.delay)
                        continue
                    state.failures += 1
                    raise _error(fault.errno_value())
            for fault in state.faults:
                if fault.op in (op, "any"):
                    fault.passed_bytes += length
            if op == "read":
                state.bytes_read += length
            else:
                state.bytes_written += length
        if delay:
            time.sleep(delay)


# --- the test side: mount, arm, read the counters, unmount --------------------------------
@dataclass
class FaultyMount:
    """A running faultyfs: `disk` is the image as the kernel sees it through FUSE."""

    mountpoint: Path
    process: subprocess.Popen[bytes]

    @property
    def disk(self) -> Path:
        return self.mountpoint / DISK[1:]

    @property
    def control(self) -> Path:
        return self.mountpoint / CONTROL[1:]

    def arm(self, *faults: Fault) -> None:
        """Replace the armed faults (none: the drive works again); counters restart."""
        plain = [{k: v for k, v in asdict(f).items() if k in _ARMED} for f in faults]
        self.control.write_text(json.dumps({"faults": plain}))

    def clear(self) -> None:
        self.arm()

    def state(self) -> FaultState:
        document = json.loads(self.control.read_text())
        faults = [Fault(**item) for item in document.pop("faults")]
        return FaultState(faults=faults, **document)


@contextmanager
def faulty_mount(backing: Path, mountpoint: Path) -> Iterator[FaultyMount]:
    """Serve `backing` at mountpoint/disk.img until the block ends, then unmount."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    log = open(mountpoint.parent / f"{mountpoint.name}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, __file__, str(backing), str(mountpoint)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_mounted(mountpoint, process)
        yield FaultyMount(mountpoint, process)
    finally:
        if os.path.ismount(mountpoint):
            run(["umount", "-l", str(mountpoint)], check=False)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_mounted(mountpoint: Path, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if os.path.ismount(mountpoint):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    log = (mountpoint.parent / f"{mountpoint.name}.log").read_text(errors="replace")
    raise RuntimeError(f"faultyfs did not mount {mountpoint}: {log[-2000:]}")


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} BACKING_IMAGE MOUNTPOINT", file=sys.stderr)
        return 2
    import mfusepy  # type: ignore[import-untyped]  # ships no type hints

    # allow_other: the loop driver and root-owned helpers (sgdisk, udev) open the file too.
    mfusepy.FUSE(FaultyDisk(argv[1]), argv[2], raw_fi=True, foreground=True,
                 allow_other=True, fsname="faultyfs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
