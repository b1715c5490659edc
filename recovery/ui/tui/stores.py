"""Finding image stores on the drives that are plugged in.

A store is any directory holding recovery-store.yaml. Technicians keep it at the root of a
USB drive or one folder down ("/media/usb/images"), so both depths are searched; deeper
searches would crawl a whole Windows volume on every hot-plug.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from recovery.model.disk import Disk
from recovery.store.objects import MARKER


@dataclass(frozen=True)
class StoreLocation:
    path: Path
    free_bytes: int
    disk: str  # the disk a technician recognises, "" when unknown

    def describe(self) -> str:
        from recovery.units import human_size
        where = f" on {self.disk}" if self.disk else ""
        return f"{self.path}  ({human_size(self.free_bytes)} free{where})"


def _mountpoints(disks: Iterable[Disk]) -> list[tuple[Path, Disk]]:
    found: list[tuple[Path, Disk]] = []
    for disk in disks:
        points = list(disk.mountpoints)
        for partition in disk.partitions:
            points.extend(partition.mountpoints)
        found.extend((Path(point), disk) for point in points)
    return found


def is_store(path: Path) -> bool:
    # A mount whose FUSE daemon died (ntfs-3g of a pulled USB drive) answers ENOTCONN to
    # every stat; it holds no store anyone can use, and must not stop the scan of the others.
    try:
        return (path / MARKER).is_file()
    except OSError:
        return False


def _candidates(root: Path) -> list[Path]:
    if is_store(root):
        return [root]
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    return [child for child in children if is_store(child)]


def locate(path: Path, disk: str = "") -> StoreLocation:
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        free = 0
    return StoreLocation(path, free, disk)


def find_stores(disks: Iterable[Disk], extra: Iterable[Path] = (),
                mounted_here: Iterable[tuple[Path, Disk]] = ()) -> list[StoreLocation]:
    """Stores on mounted partitions of `disks`, on partitions the TUI mounted itself
    (`mounted_here`, see recovery.ui.tui.storemounts), and `extra` paths the technician
    opened."""
    seen: set[Path] = set()
    stores: list[StoreLocation] = []
    # Ours first: they name the drive, where an ntfs-3g mount's own loop device would not.
    for mountpoint, disk in [*mounted_here, *_mountpoints(disks)]:
        for path in _candidates(mountpoint):
            if path not in seen:
                seen.add(path)
                stores.append(locate(path, disk.describe()))
    for path in extra:
        if path not in seen and is_store(path):
            seen.add(path)
            stores.append(locate(path))
    return stores
