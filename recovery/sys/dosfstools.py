"""dosfstools: mkfs.fat and fsck.fat, for FAT volumes addressed by byte offset in a disk."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import UsageError
from recovery.sys import losetup
from recovery.sys.run import run

_FSCK_SUMMARY = re.compile(r":\s*(\d+) files?, (\d+)/(\d+) clusters")


@dataclass(frozen=True)
class FsckFatReport:
    ok: bool
    files: int
    used_clusters: int
    total_clusters: int
    output: str


def mkfs_fat(source: Path, offset: int, size: int, *, fat_bits: int | None = None,
             sector_size: int = 512, sectors_per_cluster: int | None = None, label: str = "",
             volume_id: int | None = None) -> None:
    """Format `size` bytes at `offset` of a disk or disk-image file as FAT.

    mkfs.fat writes at an offset itself (and records it as the hidden-sector count, as a
    partitioning tool would), so no loop device is needed.
    """
    if offset % sector_size or size % 1024:
        raise UsageError(f"A FAT volume must start on a sector and span whole KiB "
                         f"(offset {offset}, size {size}).", "Align the partition.")
    argv = ["mkfs.fat", "-S", str(sector_size), "--offset", str(offset // sector_size)]
    if fat_bits:
        argv += ["-F", str(fat_bits)]
    if sectors_per_cluster:
        argv += ["-s", str(sectors_per_cluster)]
    if label:
        argv += ["-n", label]
    if volume_id is not None:
        argv += ["-i", f"{volume_id:08X}"]
    # The last argument is the volume size in KiB blocks, whatever the sector size.
    run([*argv, str(source), str(size // 1024)])


def fsck_fat(source: Path, offset: int = 0, size: int = 0) -> FsckFatReport:
    """`fsck.fat -n` (check, change nothing) and its file and cluster counts."""
    with losetup.loop_device(Path(source), offset=offset, size=size,
                             read_only=True) as device:
        result = run(["fsck.fat", "-n", str(device)], check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    match = _FSCK_SUMMARY.search(output)
    files, used, total = (int(g) for g in match.groups()) if match else (0, 0, 0)
    return FsckFatReport(result.returncode == 0 and match is not None, files, used, total,
                         output)
