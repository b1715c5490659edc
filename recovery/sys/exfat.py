"""exfatprogs: mkfs.exfat, for an exFAT volume addressed by byte offset in a disk."""

from __future__ import annotations

from pathlib import Path

from recovery.sys import losetup
from recovery.sys.run import run


def mkfs_exfat(source: Path, offset: int, size: int, *, label: str = "",
               sector_size: int = 512) -> None:
    """Format `size` bytes at `offset` of a disk (or image file) as exFAT.

    mkfs.exfat takes no offset, so it writes through a loop device over the byte range."""
    argv = ["mkfs.exfat"]
    if label:
        argv += ["--volume-label", label]
    with losetup.loop_device(source, offset=offset, size=size,
                             sector_size=sector_size) as device:
        run([*argv, str(device)])
