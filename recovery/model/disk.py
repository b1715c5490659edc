"""Whole disks and their partitions as the technician sees them in `recovery disks`.

A `Disk` is a snapshot taken from udev, sysfs and the mount table at one moment; it is
immutable so the TUI and the safety gate can hold on to it without surprises. Sizes and
offsets are bytes. `stable_id` survives re-plugging and reboots (ID_SERIAL, ID_WWN, ID_PATH,
"loop:<backing file>", "file:<path>"), unlike /dev/sdX, which moves between boots.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from recovery.model.health import NOT_CHECKED, Health
from recovery.units import human_size

Bus = Literal["nvme", "sata", "ata", "usb", "virtio", "scsi", "mmc", "loop", "file", "unknown"]

BUS_NAMES: dict[str, str] = {
    "nvme": "NVMe", "sata": "SATA", "ata": "ATA", "usb": "USB", "virtio": "virtio",
    "scsi": "SCSI", "mmc": "SD/MMC", "loop": "loop device", "file": "image file",
    "unknown": "unknown bus",
}


@dataclass(frozen=True)
class DiskPartition:
    number: int
    node: Path | None  # None when the kernel made no node (loop device without partx)
    start: int  # bytes from the start of the disk
    size: int  # bytes
    fs_type: str  # blkid's name: "ntfs", "vfat", "ext4", "BitLocker", "" when unknown
    fs_label: str
    fs_uuid: str
    part_uuid: str  # GPT partition GUID (or MBR "signature-NN"), as udev reports it
    part_type: str  # GPT type GUID or MBR type such as "0x7"
    part_name: str  # GPT partition name
    mountpoints: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def is_mounted(self) -> bool:
        return bool(self.mountpoints)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["node"] = str(self.node) if self.node else None
        data["mountpoints"] = list(self.mountpoints)
        return data


@dataclass(frozen=True)
class Disk:
    stable_id: str
    node: Path
    model: str
    serial: str
    wwn: str
    bus: str  # one of Bus
    size: int  # bytes
    logical_sector_size: int
    physical_sector_size: int
    removable: bool  # the kernel's removable flag, or any USB-attached disk
    read_only: bool
    partitions: tuple[DiskPartition, ...] = ()
    # Mounts of the whole device, and for loop devices also mounts made through another
    # loop device over the same backing file (a technician mounting a partition by offset).
    mountpoints: tuple[str, ...] = ()
    backing_file: Path | None = None  # loop devices and image files
    holds_live_medium: bool = False
    # SMART health, read separately (recovery.engine.health) because smartctl is slow and
    # may hang on a USB bridge; not part of a disk's identity, so not compared.
    health: Health = field(default=NOT_CHECKED, compare=False)

    @property
    def is_mounted(self) -> bool:
        return bool(self.mountpoints) or any(p.is_mounted for p in self.partitions)

    @property
    def all_mountpoints(self) -> tuple[str, ...]:
        """Every mount point on this disk, whole device first, then by partition."""
        found = list(self.mountpoints)
        for partition in self.partitions:
            found += [m for m in partition.mountpoints if m not in found]
        return tuple(found)

    @property
    def bus_name(self) -> str:
        return BUS_NAMES.get(self.bus, self.bus)

    def describe(self) -> str:
        """One line a technician recognises.

        'Samsung SSD 970 EVO Plus 500GB (serial S4EWNX0N123456, NVMe, 500.1 GB)'
        """
        details = []
        if self.serial:
            details.append(f"serial {self.serial}")
        if self.bus == "loop" and self.backing_file is not None:
            details.append(f"{self.bus_name} {self.node} over {self.backing_file}")
        else:
            details.append(self.bus_name)
        details.append(human_size(self.size))
        return f"{self.model or self.node.name} ({', '.join(details)})"

    def to_dict(self) -> dict[str, object]:
        return {
            "stable_id": self.stable_id,
            "node": str(self.node),
            "description": self.describe(),
            "model": self.model,
            "serial": self.serial,
            "wwn": self.wwn,
            "bus": self.bus,
            "size": self.size,
            "size_human": human_size(self.size),
            "logical_sector_size": self.logical_sector_size,
            "physical_sector_size": self.physical_sector_size,
            "removable": self.removable,
            "read_only": self.read_only,
            "mounted": self.is_mounted,
            "mountpoints": list(self.mountpoints),
            "backing_file": str(self.backing_file) if self.backing_file else None,
            "holds_live_medium": self.holds_live_medium,
            "health": self.health.to_dict(),
            "partitions": [p.to_dict() for p in self.partitions],
        }
