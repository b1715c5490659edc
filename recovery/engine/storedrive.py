"""Preparing an empty drive to hold an image store: one partition, exFAT or NTFS (both
readable by Windows, so the technician can copy images off it there).

Destructive, so it passes the safety gate like a restore and needs a confirmation; the
shell asks the technician to type the drive's serial or size first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recovery.engine.disks import find_disk, list_disks
from recovery.engine.safety import GateInput, refusals
from recovery.errors import NotConfirmedError
from recovery.model.disk import Disk
from recovery.sys import exfat, ntfs3g, sfdisk

StoreFs = Literal["exfat", "ntfs"]
MiB = 1024 * 1024
START = 1 * MiB  # aligned for every sector size and flash erase block
MIN_SIZE = 64 * MiB
MBR_LIMIT = 2 * 1024**4  # bytes an MBR partition can address with 512-byte sectors
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


@dataclass(frozen=True)
class FormatRequest:
    disk: Path
    fs: StoreFs = "exfat"
    label: str = "RECOVERY"
    confirmed: bool = False
    source: Path | None = None  # the disk being captured in the same job, never formatted


@dataclass(frozen=True)
class FormatSummary:
    disk: str
    fs: StoreFs
    label: str
    partition_start: int
    partition_size: int


def format_refusals(request: FormatRequest, disks: list[Disk]) -> list[Exception]:
    """Every reason not to format (the restore gate's: live medium, store, source,
    mounted, read-only, too small), plus the missing confirmation."""
    target = find_disk(str(request.disk), disks)
    source = find_disk(str(request.source), disks) if request.source else None
    gate = GateInput(target=target, required_size=START + MIN_SIZE,
                     sector_size=target.logical_sector_size, source=source)
    found: list[Exception] = [*refusals(gate, disks)]
    if not request.confirmed:
        found.append(NotConfirmedError(
            f"Formatting will erase {target.describe()}.",
            "Check that this is the right drive, then confirm."))
    return found


def format_store_drive(request: FormatRequest, disks: list[Disk] | None = None
                       ) -> FormatSummary:
    """One partition over the whole drive, formatted as `request.fs`."""
    disks = list_disks() if disks is None else disks
    problems = format_refusals(request, disks)
    if problems:
        raise problems[0]
    target = find_disk(str(request.disk), disks)
    sector = target.logical_sector_size
    end = target.size // MiB * MiB  # whole MiB: GPT needs its backup table after it
    gpt = target.size > MBR_LIMIT
    size = end - START - (MiB if gpt else 0)
    sfdisk.write_single_partition(target.node, gpt=gpt, start=START,
                                  type_id=BASIC_DATA if gpt else "7", sector_size=sector)
    if request.fs == "ntfs":
        ntfs3g.mkntfs(target.node, START, size, label=request.label, sector_size=sector)
    else:
        exfat.mkfs_exfat(target.node, START, size, label=request.label, sector_size=sector)
    return FormatSummary(target.describe(), request.fs, request.label, START, size)
