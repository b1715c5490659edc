"""The disk listing against recorded machines (tests/data/udev), no hardware needed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from recovery.engine.disks import disks_holding, find_disk, list_disks
from recovery.errors import SourceError
from recovery.model.disk import Disk
from recovery.sys.mounts import Mount, parse_mountinfo
from recovery.sys.udev import RecordedUdev

MACHINES = Path(__file__).resolve().parents[1] / "data" / "udev"
HANDMADE = MACHINES / "handmade-nvme-sata-usb.json"


class Devices:
    """A few hand-written udev records, for rules that need one property at a time."""

    def __init__(self, *records: dict[str, str]) -> None:
        self.records = [dict(r) for r in records]

    def block_devices(self) -> list[dict[str, str]]:
        return self.records

    def mount_table(self) -> list[Mount]:
        return []


def disk_record(name: str, **extra: str) -> dict[str, str]:
    return {"DEVNAME": f"/dev/{name}", "DEVTYPE": "disk", "MAJOR": "8", "MINOR": "0",
            "size": "2048", "ancestor_subsystems": "", **extra}


def by_node(disks: list[Disk]) -> dict[str, Disk]:
    return {str(d.node): d for d in disks}


@pytest.fixture
def handmade() -> dict[str, Disk]:
    return by_node(list_disks(RecordedUdev(HANDMADE)))


def test_every_recording_lists_disks_that_serialise() -> None:
    recordings = sorted(MACHINES.glob("*.json"))
    assert len(recordings) >= 2
    for recording in recordings:
        disks = list_disks(RecordedUdev(recording))
        assert disks, f"{recording.name} lists no disk"
        for disk in disks:
            assert not disk.stable_id.startswith("/dev/"), disk
            assert json.loads(json.dumps(disk.to_dict()))["node"] == str(disk.node)


def test_build_host_has_one_virtio_disk() -> None:
    disks = list_disks(RecordedUdev(MACHINES / "host-virtio.json"))
    assert [str(d.node) for d in disks] == ["/dev/vda"]  # zram and idle loops left out
    vda = disks[0]
    assert (vda.bus, vda.serial, vda.stable_id) == ("virtio", "overlayblk", "overlayblk")
    assert (vda.size, vda.logical_sector_size, vda.physical_sector_size) == (
        256 * 1024**3, 512, 4096)
    assert vda.mountpoints == ("/",) and vda.is_mounted and not vda.holds_live_medium
    assert vda.describe() == "Virtio disk (serial overlayblk, virtio, 274.9 GB)"


def test_nvme_without_id_bus(handmade: dict[str, Disk]) -> None:
    nvme = handmade["/dev/nvme0n1"]
    assert nvme.bus == "nvme"
    assert nvme.stable_id == "Samsung SSD 970 EVO Plus 500GB_S4EVNX0N123456"
    assert (nvme.serial, nvme.wwn) == ("S4EVNX0N123456", "eui.0025385b71b0a1c2")
    assert nvme.describe() == (
        "Samsung SSD 970 EVO Plus 500GB (serial S4EVNX0N123456, NVMe, 500.1 GB)")
    assert [p.number for p in nvme.partitions] == [1, 2, 3, 4]
    esp, msr, windows, recovery = nvme.partitions
    assert (esp.start, esp.size, esp.fs_type, esp.fs_label) == (
        2048 * 512, 204800 * 512, "vfat", "SYSTEM")
    assert (msr.fs_type, msr.part_name) == ("", "Microsoft reserved partition")
    assert windows.part_uuid == "3D2A6E7C-9F4B-4083-8C5D-7EBF20314C56"
    assert recovery.part_type == "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"
    # The technician mounted C: with ntfs-3g: the disk is in use.
    assert windows.mountpoints == ("/mnt/windows",) and nvme.is_mounted
    assert nvme.mountpoints == () and not nvme.removable


def test_usb_stick_holding_the_live_system(handmade: dict[str, Disk]) -> None:
    stick = handmade["/dev/sdb"]
    assert (stick.bus, stick.model, stick.removable) == ("usb", "SanDisk Cruzer Blade", True)
    assert stick.holds_live_medium and stick.is_mounted
    assert stick.partitions[0].mountpoints == ("/run/live/medium",)
    assert stick.partitions[0].fs_label == "RECOVERY"
    # The squashfs loop reads from the stick, so it is part of the live system too.
    squashfs = handmade["/dev/loop1"]
    assert squashfs.holds_live_medium
    assert squashfs.stable_id == "loop:/run/live/medium/live/filesystem.squashfs"
    assert not handmade["/dev/nvme0n1"].holds_live_medium
    assert list(handmade)[-1] == "/dev/loop1"  # loop devices after real disks


def test_live_medium_elsewhere_marks_nothing(handmade: dict[str, Disk]) -> None:
    disks = list_disks(RecordedUdev(HANDMADE), live_medium=Path("/lib/live/mount/medium"))
    assert not any(d.holds_live_medium for d in disks)


def test_sata_disk_with_mbr_layout(handmade: dict[str, Disk]) -> None:
    sata = handmade["/dev/sda"]
    assert (sata.bus, sata.model, sata.serial) == (
        "sata", "WDC WD2500AAKX-00ERMA0", "WD-WCC2EXA12345")
    assert (sata.physical_sector_size, sata.is_mounted) == (4096, False)
    reserved, windows = sata.partitions
    assert (reserved.part_type, reserved.part_uuid, reserved.fs_label) == (
        "07", "A1B2C3D4-01", "System Reserved")
    assert windows.start == 1026048 * 512


def test_optical_empty_reader_ram_and_idle_loops_are_left_out(
        handmade: dict[str, Disk]) -> None:
    assert set(handmade) == {"/dev/nvme0n1", "/dev/sda", "/dev/sdb", "/dev/loop1"}


@pytest.mark.parametrize(("record", "bus"), [
    (disk_record("nvme1n1", ID_PATH="pci-0000:00:04.0-nvme-1"), "nvme"),
    (disk_record("sdx", ID_PATH="pci-0000:01:00.0-nvme-1", ancestor_subsystems="nvme"), "nvme"),
    (disk_record("vdb", ID_PATH="virtio-pci-0000:00:05.0"), "virtio"),
    (disk_record("sdc", ID_BUS="ata", ID_ATA_SATA="1"), "sata"),
    (disk_record("sdc", ID_BUS="ata", ID_PATH="pci-0000:00:1f.2-ata-3"), "sata"),
    (disk_record("sdc", ID_BUS="ata", ID_PATH="pci-0000:00:01.1"), "ata"),
    # A SATA disk in a USB enclosure is a USB disk: it can be unplugged.
    (disk_record("sdd", ID_BUS="ata", ID_PATH="pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0"),
     "usb"),
    (disk_record("mmcblk0", ID_PATH="platform-fe320000.mmc"), "mmc"),
    (disk_record("sde", ID_BUS="scsi"), "scsi"),
    (disk_record("sdf"), "unknown"),
])
def test_bus_rules(record: dict[str, str], bus: str) -> None:
    (disk,) = list_disks(Devices(record))
    assert disk.bus == bus


def test_stable_id_never_falls_back_to_the_node() -> None:
    records = [disk_record("sda", ID_WWN="0x5000c500a1b2c3d4"),
               disk_record("sdb", MINOR="16", ID_PATH="pci-0000:00:17.0-ata-2"),
               disk_record("sdc", MINOR="32", DEVPATH="/devices/virtual/block/sdc")]
    ids = [d.stable_id for d in list_disks(Devices(*records))]
    assert ids == ["0x5000c500a1b2c3d4", "pci-0000:00:17.0-ata-2",
                   "devpath:/devices/virtual/block/sdc"]


def test_fuse_mount_with_anonymous_device_number_is_found_by_source() -> None:
    mounts = parse_mountinfo("60 25 0:55 / /media/c rw - fuse /dev/nvme0n1p3 rw\n")
    disks = by_node(list_disks(RecordedUdev(HANDMADE), mounts=mounts))
    assert disks["/dev/nvme0n1"].partitions[2].mountpoints == ("/media/c",)
    assert not disks["/dev/sdb"].is_mounted  # this table has no live medium


def test_find_disk_by_serial_stable_id_and_ambiguity(handmade: dict[str, Disk]) -> None:
    disks = list(handmade.values())
    nvme = handmade["/dev/nvme0n1"]
    assert find_disk("S4EVNX0N123456", disks) == nvme
    assert find_disk(nvme.stable_id, disks) == nvme
    assert find_disk("eui.0025385b71b0a1c2", disks) == nvme
    twin = replace(handmade["/dev/sda"], serial=nvme.serial)  # cheap enclosures repeat serials
    with pytest.raises(SourceError, match="matches 2 disks"):
        find_disk(nvme.serial, [*disks, twin])
    with pytest.raises(SourceError, match="No disk matches '/dev/sdz'"):
        find_disk("/dev/sdz", disks)


def test_recording_in_unknown_format_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "machine.json"
    wrong.write_text(json.dumps({"format": 99, "devices": []}))
    with pytest.raises(SourceError, match="format 1"):
        RecordedUdev(wrong)
    wrong.write_text("{not json")
    with pytest.raises(SourceError, match="cannot be read"):
        RecordedUdev(wrong)


def test_path_on_a_file_system_with_anonymous_device_is_traced_through_its_mount(
        tmp_path: Path) -> None:
    """FUSE file systems (exFAT, ntfs-3g as plain fuse) report no real device in st_dev."""
    records = [disk_record("sdq", MINOR="240", ID_SERIAL="USB_Store_Disk"),
               {**disk_record("sdq1", MINOR="241", DEVTYPE="partition"), "parent": "/dev/sdq"}]
    mounts = [Mount(mount_id=90, parent_id=1, major=0, minor=999, root="/",
                    mountpoint=str(tmp_path), fs_type="fuse", source="/dev/sdq1")]
    disks = list_disks(Devices(*records), mounts=mounts)
    holding = disks_holding(tmp_path / "store" / "not-yet-created", disks, Devices(*records),
                            mounts)
    assert [d.stable_id for d in holding] == ["USB_Store_Disk"]
    assert disks[0].partitions[0].mountpoints == (str(tmp_path),)
