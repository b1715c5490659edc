"""The disk listing against this machine's live udev, with real loop devices and mounts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from recovery.engine.devices import machine_now, resolve_disk
from recovery.engine.disks import (
    describe_node,
    disk_holding,
    disks_holding,
    find_disk,
    list_disks,
)
from recovery.errors import SourceError
from recovery.model.disk import Disk
from recovery.sys import losetup, udev
from recovery.sys.run import run, run_text
from recovery.sys.udev import RecordedUdev

MiB = 1024 * 1024
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BASIC_DATA_TYPE = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
MakeLoop = Callable[..., tuple[Path, Path]]


@pytest.fixture(scope="module", autouse=True)
def udev_running() -> None:
    """The listing reads udev's database: start udevd the way tests/setup.sh does."""
    if run(["pgrep", "-x", "systemd-udevd"], check=False).returncode != 0:
        run(["/lib/systemd/systemd-udevd", "--daemon"])
        run(["udevadm", "trigger"], check=False)
    udev.settle()


@dataclass
class PartitionedLoop:
    image: Path
    device: Path
    esp: Path
    data: Path


@pytest.fixture
def gpt_loop(make_loop: MakeLoop) -> PartitionedLoop:
    """64 MiB GPT disk on a loop device: FAT32 ESP (20 MiB at 1 MiB) and an NTFS volume."""
    image, device = make_loop(64 * MiB)
    run(["sgdisk", "-n1:2048:+20M", "-t1:ef00", "-c1:EFI system",
         "-n2:0:0", "-t2:0700", "-c2:Windows data", str(device)])
    losetup.add_partitions(device)
    udev.settle()
    esp, data = Path(f"{device}p1"), Path(f"{device}p2")
    run(["mkfs.fat", "-F", "32", "-n", "ESPLBL", str(esp)])
    run(["mkntfs", "-Q", "-F", "-L", "WinVol", str(data)])
    udev.refresh([device, esp, data])
    return PartitionedLoop(image, device, esp, data)


@contextmanager
def ntfs_mounted(device: Path, mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir(exist_ok=True)
    run(["ntfs-3g", str(device), str(mountpoint)])
    try:
        yield mountpoint
    finally:
        run(["umount", str(mountpoint)], check=False)


def the_disk(node: Path) -> Disk:
    matches = [d for d in list_disks() if d.node == node]
    assert len(matches) == 1, f"{node} listed {len(matches)} times"
    return matches[0]


def sgdisk_partition_guid(device: Path, number: int) -> str:
    for line in run_text(["sgdisk", "-i", str(number), str(device)]).splitlines():
        if line.startswith("Partition unique GUID:"):
            return line.split(":", 1)[1].strip().upper()
    raise AssertionError(f"sgdisk printed no GUID for partition {number}")


@pytest.mark.root("loop devices and mounts")
def test_loop_disk_shows_partitions_as_udev_and_sgdisk_see_them(gpt_loop: PartitionedLoop
                                                                 ) -> None:
    disk = the_disk(gpt_loop.device)
    assert disk.bus == "loop"
    assert disk.stable_id == f"loop:{gpt_loop.image}"
    assert disk.backing_file == gpt_loop.image
    assert disk.model == gpt_loop.image.name
    assert disk.size == 64 * MiB
    assert (disk.logical_sector_size, disk.read_only, disk.is_mounted) == (512, False, False)
    esp, data = disk.partitions
    assert (esp.number, esp.node, esp.start, esp.size) == (1, gpt_loop.esp, MiB, 20 * MiB)
    assert (esp.fs_type, esp.fs_label, esp.part_type, esp.part_name) == (
        "vfat", "ESPLBL", ESP_TYPE, "EFI system")
    assert (data.number, data.node, data.start) == (2, gpt_loop.data, 21 * MiB)
    assert (data.fs_type, data.fs_label, data.part_type, data.part_name) == (
        "ntfs", "WinVol", BASIC_DATA_TYPE, "Windows data")
    assert esp.part_uuid == sgdisk_partition_guid(gpt_loop.device, 1)
    assert data.part_uuid == sgdisk_partition_guid(gpt_loop.device, 2)
    assert data.fs_uuid and not data.mountpoints
    assert json.loads(json.dumps(disk.to_dict()))["partitions"][1]["fs_label"] == "WinVol"


@pytest.mark.root("loop devices and mounts")
def test_mounted_partition_makes_disk_and_image_file_mounted(gpt_loop: PartitionedLoop,
                                                             tmp_path: Path) -> None:
    with ntfs_mounted(gpt_loop.data, tmp_path / "win") as mountpoint:
        disks = list_disks()
        disk = find_disk(str(gpt_loop.device), disks)
        assert disk.is_mounted
        assert disk.partitions[1].mountpoints == (str(mountpoint),)
        assert disk.partitions[0].mountpoints == ()
        as_file = describe_node(gpt_loop.image, disks)
        assert as_file is not None and str(mountpoint) in as_file.mountpoints
        # A store on that volume lives on the loop disk, and on whatever holds the image.
        holding = disks_holding(mountpoint / "store", disks)
        assert holding[0] == disk == disk_holding(mountpoint, disks)
        assert holding[-1] == disk_holding(gpt_loop.image.parent, disks)
    assert not the_disk(gpt_loop.device).is_mounted


@pytest.mark.root("loop devices and mounts")
def test_disk_mounted_as_live_medium_is_marked(gpt_loop: PartitionedLoop, tmp_path: Path
                                               ) -> None:
    with ntfs_mounted(gpt_loop.data, tmp_path / "medium") as medium:
        disks = list_disks(live_medium=medium)
        # Like an ISO file booted with live-boot's findiso=: the disk under the image file
        # holds the running system as well.
        under_image = disk_holding(gpt_loop.image, disks)
        assert under_image is not None
        assert {d.node for d in disks if d.holds_live_medium} == {gpt_loop.device,
                                                                  under_image.node}
        as_file = describe_node(gpt_loop.image, disks)
        assert as_file is not None and as_file.holds_live_medium
        assert not any(d.holds_live_medium for d in list_disks(live_medium=tmp_path / "x"))


@pytest.mark.root("loop devices and mounts")
def test_mount_through_second_loop_over_the_image_counts_for_the_image(
        gpt_loop: PartitionedLoop, tmp_path: Path) -> None:
    """A technician's `losetup -o OFFSET image` + mount must not go unnoticed."""
    data = the_disk(gpt_loop.device).partitions[1]
    esp = the_disk(gpt_loop.device).partitions[0]
    with losetup.loop_device(gpt_loop.image, offset=data.start, size=data.size) as by_offset, \
            losetup.loop_device(gpt_loop.image, offset=esp.start, size=esp.size) as esp_only, \
            ntfs_mounted(by_offset, tmp_path / "by-offset") as mountpoint:
        disks = list_disks()
        whole = find_disk(str(gpt_loop.device), disks)
        assert whole.is_mounted and str(mountpoint) in whole.mountpoints
        assert find_disk(str(by_offset), disks).mountpoints == (str(mountpoint),)
        assert find_disk(str(by_offset), disks).stable_id == f"loop:{gpt_loop.image}@{data.start}"
        # The loop over the ESP covers other bytes of the file: it is not in use.
        assert not find_disk(str(esp_only), disks).is_mounted


@pytest.mark.root("loop devices and mounts")
def test_loop_over_a_partition_node_is_not_a_disk(gpt_loop: PartitionedLoop,
                                                  tmp_path: Path) -> None:
    """The loop ntfs-3g (and the TUI's store mounts) put over a partition: not a disk of
    its own, and what is mounted through it counts for the disk below."""
    with losetup.loop_device(gpt_loop.data, read_only=True) as over_partition, \
            ntfs_mounted(over_partition, tmp_path / "through-loop") as mountpoint:
        udev.settle()
        disks = list_disks()
        assert over_partition not in [d.node for d in disks]
        disk = find_disk(str(gpt_loop.device), disks)
        assert disk.is_mounted and str(mountpoint) in disk.all_mountpoints
        assert disks_holding(mountpoint / "store", disks)[0] == disk


@pytest.mark.root("loop devices and mounts")
def test_loop_device_without_backing_file_is_not_listed(make_loop: MakeLoop) -> None:
    image, device = make_loop(8 * MiB, name="detached.img")
    assert the_disk(device).backing_file == image
    losetup.detach(device)
    udev.settle()
    listed = list_disks()
    assert all(d.backing_file is not None for d in listed if d.bus == "loop")
    assert not [d for d in listed if d.backing_file == image]


def test_virtio_disk_of_this_machine() -> None:
    if not Path("/dev/vda").exists():
        pytest.skip("this machine has no virtio disk")
    disks = list_disks()
    vda = find_disk("/dev/vda", disks)
    assert vda.bus == "virtio"
    assert vda.size == int(Path("/sys/block/vda/size").read_text()) * 512
    assert vda.stable_id and not vda.stable_id.startswith("/dev/")
    assert find_disk(vda.stable_id, disks) == vda
    for link in Path("/dev/disk/by-id").glob("*"):
        if link.resolve() == Path("/dev/vda"):
            assert find_disk(str(link), disks) == vda


def test_find_disk_names_what_is_there_when_nothing_matches() -> None:
    disks = list_disks()
    with pytest.raises(SourceError) as caught:
        find_disk("WD-NO-SUCH-SERIAL", disks)
    assert "WD-NO-SUCH-SERIAL" in caught.value.title
    assert all(str(d.node) in caught.value.title for d in disks)
    assert caught.value.action


@pytest.mark.root("loop devices and mounts")
def test_describe_node_for_image_file_partition_and_directory(gpt_loop: PartitionedLoop,
                                                              tmp_path: Path) -> None:
    disks = list_disks()
    as_file = describe_node(gpt_loop.image, disks)
    assert as_file is not None
    assert (as_file.bus, as_file.stable_id, as_file.size) == (
        "file", f"file:{gpt_loop.image}", 64 * MiB)
    assert not as_file.is_mounted
    assert describe_node(gpt_loop.device, disks) == find_disk(str(gpt_loop.device), disks)
    assert describe_node(gpt_loop.esp, disks) is None
    assert describe_node(tmp_path, disks) is None
    assert describe_node(tmp_path / "missing.img", disks) is None


@pytest.mark.root("loop devices and mounts")
def test_hotplug_watcher_reports_partitions_added(make_loop: MakeLoop) -> None:
    _, device = make_loop(16 * MiB)
    run(["sgdisk", "-n1:2048:0", str(device)])
    seen: list[tuple[str, str]] = []
    added = threading.Event()

    def on_event(action: str, node: str) -> None:
        seen.append((action, node))
        if (action, node) == ("add", f"{device}p1"):
            added.set()

    watcher = udev.watch_block_devices(on_event)
    try:
        losetup.add_partitions(device)
        # The timeout only keeps a broken udev from hanging the suite; it measures nothing.
        assert added.wait(timeout=60), f"no add event for {device}p1, saw {seen}"
    finally:
        watcher.stop()
        watcher.stop()


@pytest.mark.root("loop devices and mounts")
def test_recorder_output_reads_back_as_this_machine(gpt_loop: PartitionedLoop,
                                                    tmp_path: Path) -> None:
    recording = tmp_path / "machine.json"
    result = subprocess.run([sys.executable, "-m", "recovery.sys.udev", "record", "test"],
                            capture_output=True, check=True, env={**os.environ})
    recording.write_bytes(result.stdout)
    recorded = list_disks(RecordedUdev(recording))
    disk = find_disk(str(gpt_loop.device), recorded)
    live = the_disk(gpt_loop.device)
    assert disk.partitions == live.partitions
    assert (disk.stable_id, disk.size, disk.bus) == (live.stable_id, live.size, live.bus)


@pytest.mark.root("loop devices and mounts")
def test_partitions_without_kernel_nodes_come_from_the_table(make_loop: MakeLoop) -> None:
    """No partx: the kernel here has no partition nodes for loop devices, the listing still
    shows what restoring over this disk would destroy."""
    image, device = make_loop(64 * MiB)
    run(["sgdisk", "-n1:2048:+20M", "-t1:ef00", "-c1:EFI system", "-n2:0:0", "-t2:0700",
         str(device)])
    run(["mkfs.fat", "-F", "32", "--offset", "2048", str(device), str(20 * 1024)])
    disk = the_disk(device)
    esp, data = disk.partitions
    assert (esp.node, esp.number, esp.start, esp.size) == (None, 1, MiB, 20 * MiB)
    assert (esp.fs_type, esp.part_type, esp.part_name) == ("vfat", ESP_TYPE, "EFI system")
    assert esp.part_uuid == sgdisk_partition_guid(device, 1)
    assert (data.number, data.fs_type, data.part_type) == (2, "", BASIC_DATA_TYPE)
    as_file = describe_node(image)
    assert as_file is not None and as_file.partitions == disk.partitions


def test_mbr_image_file_with_logical_partitions(tmp_path: Path) -> None:
    image = tmp_path / "mbr.img"
    with open(image, "wb") as handle:
        handle.truncate(64 * MiB)
    script = ("label: dos\nlabel-id: 0x1234abcd\n"
              "start=2048, size=20480, type=7, bootable\n"
              "start=22528, type=5\n"
              "start=24576, size=10240, type=83\n"
              "start=36864, type=7\n")
    run(["sfdisk", "--no-reread", "--no-tell-kernel", str(image)], input_bytes=script.encode())
    run(["mkfs.fat", "-F", "16", "--offset", "2048", str(image), str(10 * 1024)])
    disk = describe_node(image)
    assert disk is not None
    assert [(p.number, p.start // 512, p.part_type, p.part_uuid, p.fs_type)
            for p in disk.partitions] == [
        (1, 2048, "07", "1234ABCD-01", "vfat"), (5, 24576, "83", "1234ABCD-05", ""),
        (6, 36864, "07", "1234ABCD-06", "")]
    assert disk.partitions[1].size == 10240 * 512


def test_bare_file_system_image_has_no_partitions(tmp_path: Path) -> None:
    volume = tmp_path / "volume.img"
    with open(volume, "wb") as handle:
        handle.truncate(16 * MiB)
    run(["mkntfs", "-Q", "-F", str(volume)])
    disk = describe_node(volume)
    assert disk is not None and disk.partitions == ()


def test_machine_now_walks_udev_once_for_every_question(gpt_loop: PartitionedLoop,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """One step's questions (which disk is this node, which disks hold a path) share one
    udev walk, and the answers are those of walking udev for each. Only this test's own
    disk is compared: other sessions on this machine attach and mount loop devices."""
    walks: list[int] = []
    real_walk = udev.LiveUdev.block_devices

    def counted(self: udev.LiveUdev) -> list[dict[str, str]]:
        walks.append(1)
        return real_walk(self)

    def mine(disks: list[Disk]) -> list[Disk]:
        return [disk for disk in disks if disk.node == gpt_loop.device]

    live_disks = list_disks()
    live_holders = [d.node for d in disks_holding(gpt_loop.image, live_disks)]
    monkeypatch.setattr(udev.LiveUdev, "block_devices", counted)
    disks, snapshot = machine_now()
    assert len(mine(disks)) == 1 and mine(disks) == mine(live_disks)
    assert [d.node for d in disks_holding(gpt_loop.image, disks, snapshot)] == live_holders
    assert resolve_disk(gpt_loop.device, disks) == mine(disks)[0]
    assert mine(list_disks(snapshot)) == mine(disks)
    assert len(walks) == 1
