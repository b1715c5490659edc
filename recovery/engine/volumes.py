"""What the home screen says about each partition beyond udev: Windows, BitLocker,
hibernated, dirty. Probing reads the volume (boot sector, $MFT, $Bitmap), so results are
cached per partition identity and only recomputed when a partition changes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from recovery.errors import RecoveryError
from recovery.fs.probe import VolumeInfo, probe_volume
from recovery.model.disk import Disk, DiskPartition
from recovery.sys.blockdev import BlockDevice

PROBED_TYPES = {"ntfs", "vfat", "bitlocker", ""}
PartKey = tuple[str, int]  # (disk node, partition number)


@dataclass(frozen=True)
class VolumeNotes:
    tags: tuple[str, ...]  # short, for the table: "Windows", "BitLocker", "hibernated", ...
    sentences: tuple[str, ...]  # the probe's full warnings, for the details line


def notes_of(info: VolumeInfo) -> VolumeNotes:
    tags = []
    if info.windows_system:
        tags.append(f"Windows {info.windows_version}".strip())
    if info.bitlocker:
        tags.append("BitLocker")
    if info.hibernated:
        tags.append(info.hibernated)
    if info.dirty:
        tags.append("dirty")
    return VolumeNotes(tuple(tags), info.warnings)


class VolumeProber:
    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, str, int, str], VolumeNotes] = {}

    def notes(self, disks: list[Disk]) -> dict[PartKey, VolumeNotes]:
        found: dict[PartKey, VolumeNotes] = {}
        for disk in disks:
            if disk.holds_live_medium or not os.access(disk.node, os.R_OK):
                continue
            for part in disk.partitions:
                if part.fs_type.lower() in PROBED_TYPES:
                    notes = self._probe(disk, part)
                    if notes is not None:
                        found[(str(disk.node), part.number)] = notes
        return found

    def _probe(self, disk: Disk, part: DiskPartition) -> VolumeNotes | None:
        key = (str(disk.node), part.number, part.part_uuid, part.size, part.fs_uuid)
        if key not in self._cache:
            try:
                with BlockDevice.open(disk.node) as device:
                    self._cache[key] = notes_of(probe_volume(device, part.start, part.size))
            except (RecoveryError, OSError):
                return None  # an unreadable volume is the disk list's business, not ours
        return self._cache[key]
