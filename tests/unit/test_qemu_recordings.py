"""Disk listing on udev databases recorded inside QEMU guests of the live image
(`python3 -m qemu record-udev`): NVMe, SATA, USB and virtio disks as a real boot sees them."""

from __future__ import annotations

from pathlib import Path

from recovery.engine.disks import find_disk, list_disks
from recovery.engine.safety import GateInput, refusals
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


def test_bios_pc_with_an_mbr_windows_disk_on_sata_and_a_usb_store() -> None:
    disks = list_disks(RecordedUdev(DATA / "qemu-bios-sata-usb.json"))
    by_serial = {disk.serial: disk for disk in disks if disk.serial}
    assert set(by_serial) == {"SATA-SYS-0001", "USB-STORE-0001"}
    windows = by_serial["SATA-SYS-0001"]
    assert windows.bus == "sata" and not windows.removable
    assert [(p.number, p.fs_type) for p in windows.partitions] == [(1, "ntfs"), (2, "ntfs")]
    store = by_serial["USB-STORE-0001"]
    assert store.bus == "usb" and store.removable
    assert [p.fs_label for p in store.partitions] == ["STORE"]
    # Booted from the CD: only the loop device of the squashfs root is part of the live
    # system; no PC disk is, and the CD itself is not listed.
    live = [d.stable_id for d in disks if d.holds_live_medium]
    assert live == ["loop:/run/live/medium/live/filesystem.squashfs"]
    assert not any(str(d.node) == "/dev/sr0" for d in disks)


def test_usb_stick_boot_marks_the_stick_as_the_live_medium_and_never_a_target() -> None:
    disks = list_disks(RecordedUdev(DATA / "qemu-uefi-usb-boot.json"))
    stick = next(d for d in disks if d.serial == "RECOVERY-STICK")
    assert stick.bus == "usb" and stick.holds_live_medium
    windows = next(d for d in disks if d.serial == "NVME-SB-0001")
    assert windows.bus == "nvme" and not windows.holds_live_medium
    assert [p.fs_type for p in windows.partitions] == ["vfat", "", "ntfs", "ntfs"]
    gate = GateInput(target=stick, required_size=stick.size // 2, sector_size=512)
    reasons = refusals(gate, disks)
    assert any("holds the running recovery system" in str(r) for r in reasons)
    assert refusals(GateInput(target=windows, required_size=windows.size // 2,
                              sector_size=512), disks) == []
