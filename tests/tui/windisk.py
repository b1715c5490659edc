"""A small Windows-like GPT disk for driving whole flows: ESP (FAT), MSR, and an NTFS system
volume holding Windows\\System32\\config with a real SYSTEM hive (so the engine sees a
Windows system volume), plus user files."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from recovery.model.layout import PartitionTable, TablePartition
from recovery.sys import dosfstools, ntfs3g, sgdisk
from tests.conftest import unpack_hive
from tests.fsbuild import BuiltVolume, file_set, fill_ntfs

MiB = 1024 * 1024
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
MSR = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
DISK_SIZE = 160 * MiB


@dataclass(frozen=True)
class WindowsDisk:
    image: Path
    table: PartitionTable

    @property
    def system(self) -> TablePartition:
        return self.table.partitions[2]


def _guid() -> str:
    return str(uuid.uuid4()).upper()


def windows_table() -> PartitionTable:
    parts = (
        TablePartition(1, 1 * MiB, 33 * MiB, ESP, _guid(), "EFI system partition"),
        TablePartition(2, 34 * MiB, 16 * MiB, MSR, _guid(), "Microsoft reserved partition"),
        TablePartition(3, 50 * MiB, 100 * MiB, BASIC_DATA, _guid(), "Basic data partition"),
    )
    return PartitionTable("gpt", 512, DISK_SIZE, _guid(), parts)


def build_windows_disk(image: Path, work: Path) -> WindowsDisk:
    """Partition, format and fill `image` (created, DISK_SIZE bytes)."""
    with open(image, "wb") as handle:
        handle.truncate(DISK_SIZE)
    table = windows_table()
    sgdisk.write_gpt(image, table)
    esp, _msr, system = table.partitions
    dosfstools.mkfs_fat(image, esp.start, esp.size, fat_bits=32, label="SYSTEM")
    ntfs3g.mkntfs(image, system.start, system.size, label="Windows")
    hive = unpack_hive("SYSTEM.xz", work)
    files = {"Windows/System32/config/SYSTEM": hive.read_bytes(),
             **{f"Users/tech/{name}": data for name, data in file_set(7, 10).items()}}
    mountpoint = work / "mnt"
    mountpoint.mkdir(exist_ok=True)
    fill_ntfs(BuiltVolume(image, system.start, system.size), mountpoint, files)
    return WindowsDisk(image, table)
