"""Turning a path the technician typed into a whole disk we know something about."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from recovery.engine.disks import describe_node, list_disks
from recovery.errors import Hint, SourceError
from recovery.model.disk import Disk
from recovery.sys.udev import UdevSnapshot


def partition_parent(path: Path) -> str | None:
    """'/dev/sda' when `path` is a partition block device like /dev/sda2, else None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(info.st_mode):
        return None
    sys_dir = Path(f"/sys/dev/block/{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}")
    if not (sys_dir / "partition").exists():
        return None
    return "/dev/" + sys_dir.resolve().parent.name


def resolve_disk(path: Path, disks: list[Disk] | None = None) -> Disk:
    """The Disk behind a device node or image file; partitions are refused by name.
    `disks`: the machine's disk list when the caller has it already (else listed here)."""
    parent = partition_parent(path)
    if parent is not None:
        raise SourceError(f"{path} is a partition, not a whole disk.",
                          f"Give the whole disk ({parent}); recovery captures and restores "
                          "the partition table together with the partitions.")
    if not path.exists():
        raise SourceError(f"{path} does not exist.",
                          "Check the name; the drive may have been unplugged.",
                          hint=Hint.LIST_DISKS)
    real = path.resolve()
    if stat.S_ISBLK(real.stat().st_mode):
        for disk in list_disks() if disks is None else disks:
            if disk.node.resolve() == real:
                return disk
    described = describe_node(real, disks)
    if described is None:
        raise SourceError(f"{path} is neither a disk nor a disk-image file.",
                          "Give a whole disk such as /dev/sda or a raw .img file.")
    return described


def machine_now() -> tuple[list[Disk], UdevSnapshot]:
    """This machine's disks and the udev facts they came from, read once: for a step that
    asks several questions at one moment (which disk is at this node, does it hold the
    store), each of which walked udev again before (about 50 ms a walk here)."""
    udev = UdevSnapshot()
    return list_disks(udev), udev
