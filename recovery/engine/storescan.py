"""Finding image stores on the drives that are plugged in.

A store is any directory holding recovery-store.yaml. Technicians keep it at the root of a
USB drive or one folder down ("/media/usb/images"), so both depths are searched; deeper
searches would crawl a whole Windows volume on every hot-plug.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from recovery.model.disk import Disk, DiskPartition
from recovery.store.objects import MARKER

# File systems the live system can write a store to (and read one from): ntfs through
# ntfs-3g, the rest by the kernel. A type this kernel lacks fails to mount and is skipped.
WRITABLE = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "ntfs", "vfat", "exfat"})
NEW_STORE_DIR = "recovery-images"  # the folder a new store gets on a drive


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
    """`path` may not exist yet (a new store's folder): its file system's free space then."""
    try:
        free = shutil.disk_usage(path if path.exists() else path.parent).free
    except OSError:
        free = 0
    return StoreLocation(path, free, disk)


def find_stores(disks: Iterable[Disk], extra: Iterable[Path] = (),
                mounted_here: Iterable[tuple[Path, Disk]] = ()) -> list[StoreLocation]:
    """Stores on mounted partitions of `disks`, on partitions the TUI mounted itself
    (`mounted_here`, see recovery.engine.storemounts), and `extra` paths the technician
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


@dataclass(frozen=True)
class NewStorePlace:
    """A file system a new store can be created on (it holds no store the list shows)."""

    disk: Disk
    partition: DiskPartition
    size: int
    free_bytes: int | None  # None: not known (it was not mounted to look)
    mountpoint: Path | None  # mounted by someone else already

    def describe(self) -> str:
        return f"New store on {self.drive()}"

    def drive(self) -> str:
        """"sdb1 PHOTOS (exfat, 32 GB, 20 GB free), SanDisk Ultra"."""
        from recovery.units import human_size
        part = self.partition
        space = human_size(self.size) + (f", {human_size(self.free_bytes)} free"
                                         if self.free_bytes is not None else "")
        name = part.node.name if part.node is not None else f"{self.disk.node.name}#{part.number}"
        return (f"{name} {part.fs_label or '(no label)'} ({part.fs_type or 'file system'}, "
                f"{space}), {self.disk.model or self.disk.bus_name}")


def new_store_places(disks: Iterable[Disk], source: Disk | None,
                     stores: Iterable[StoreLocation],
                     space: Callable[[Disk, DiskPartition], tuple[int, int] | None],
                     mountpoint: Callable[[Disk, DiskPartition], Path | None]
                     ) -> list[NewStorePlace]:
    """Every writable file system on every disk but `source` and the live medium whose
    mount (`mountpoint`: anyone's, or ours) holds none of `stores`."""
    store_paths = [store.path for store in stores]
    places: list[NewStorePlace] = []
    for disk in disks:
        if disk.holds_live_medium or disk.read_only or (
                source is not None and disk.stable_id == source.stable_id):
            continue
        for part in disk.partitions:
            known = space(disk, part)
            # A partition without a node was sniffed for Windows file systems only: one
            # that mounted (ext4...) is writable too.
            if part.fs_type not in WRITABLE and not (part.node is None and known):
                continue
            point = Path(part.mountpoints[0]) if part.mountpoints else mountpoint(disk, part)
            if point is not None and any(p.is_relative_to(point) for p in store_paths):
                continue
            size, free = known or (part.size, None)
            places.append(NewStorePlace(disk, part, size, free,
                                        Path(part.mountpoints[0]) if part.mountpoints
                                        else None))
    return places


def blank_drives(disks: Iterable[Disk], source: Disk | None) -> list[Disk]:
    """Drives with no file system (new, or wiped) that could be formatted for a store:
    never the live medium, a read-only or mounted drive, or `source`."""
    return [d for d in disks if not d.holds_live_medium and not d.read_only
            and not d.all_mountpoints and not any(p.fs_type for p in d.partitions)
            and (source is None or d.stable_id != source.stable_id)]
