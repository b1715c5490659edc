"""Disk listing on udev databases recorded inside QEMU guests of the live image
(`python3 -m qemu record-udev`): NVMe, SATA, USB and virtio disks as a real boot sees them."""

from __future__ import annotations

from pathlib import Path

from recovery.engine.disks import find_disk, list_disks
from recovery.sys.udev import RecordedUdev

DATA = Path(__file__).resolve().parents[1] / "data" / "udev"


def test_every_bus_with_its_serial_and_partitions() -> None:
    disks = list_disks(RecordedUdev(DATA / "qemu-uefi-all-buses.json"))
    by_serial = {disk.serial: disk for disk in disks if disk.serial}
    assert {s: d.bus for s, d in by_serial.items()} == {
        "NVME-0001": "nvme", "SATA-0001": "sata", "USB-0001": "usb", "VIRTIO-0001": "virtio"}
    nvme = by_serial["NVME-0001"]
    assert str(nvme.node) == "/dev/nvme0n1"
    assert [(p.number, p.fs_type, p.fs_label) for p in nvme.partitions] == [
        (1, "vfat", "SYSTEM"), (2, "", ""), (3, "ntfs", "Windows")]
    assert by_serial["SATA-0001"].model == "Samsung SSD 860 EVO 250GB"
    assert by_serial["USB-0001"].removable
    assert by_serial["USB-0001"].partitions[0].fs_label == "STORE"
    # The boot CD is the live medium, never a disk to capture or overwrite.
    assert not any(str(d.node) == "/dev/sr0" for d in disks)
    assert find_disk("NVME-0001", disks).node == nvme.node
