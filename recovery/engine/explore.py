"""Open a captured partition without restoring it: list folders, see its restore points,
compare two images. Everything reads the store through recovery.store.imageview and writes
nothing there (the store may be on a read-only medium).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from recovery.engine.listcache import KEEP_FROM, ListingCache, listing_cache
from recovery.errors import Hint, ImageDamagedError, ImagePathNotFoundError, UnsupportedLayoutError
from recovery.fs.browse import Browser, FileEntry, NtfsBrowser, join, normal_path
from recovery.fs.fatdir import FatBrowser
from recovery.registry.inspect import PointsReport
from recovery.registry.points import list_points
from recovery.registry.rollback import staging_dir
from recovery.registry.volume import WindowsVolume, open_file_volume
from recovery.store.imageview import DamagedRange, ImageView, open_view
from recovery.store.objects import ChunkStore

T = TypeVar("T")


@dataclass
class OpenedImage:
    """One partition of an image, browsable; listings are remembered (a folder of 100,000
    files is read from the MFT once)."""

    view: ImageView
    browser: Browser
    cache: ListingCache | None = None  # listings kept between runs (NTFS only)
    _listings: dict[str, list[FileEntry]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.view.describe()

    def entry(self, path: str) -> FileEntry:
        path = normal_path(path)
        kept = self.cache.get(path) if self.cache else None
        if kept is not None:
            self._listings.setdefault(path, kept[1])
            return kept[0]
        found = self._guard(lambda: self.browser.stat(path), path)
        if found is None:
            parent = path.rsplit("/", 1)[0] or "/"
            raise ImagePathNotFoundError(
                f"There is no {path} on {self.where}.",
                f"Look in the folder {parent} of partition {self.view.part.number} for the "
                "right name.")
        return found

    def list_dir(self, path: str) -> list[FileEntry]:
        path = normal_path(path)
        cached = self._listings.get(path)
        if cached is not None:
            return cached
        entry = self.entry(path)
        if not entry.is_dir:
            return [entry]
        cached = self._listings.get(path)  # entry() found it kept between runs
        if cached is not None:
            return cached
        found = sorted(self._guard(lambda: self.browser.list_dir(path), path),
                       key=lambda e: (not e.is_dir, e.name.lower()))
        self._listings[path] = found
        if self.cache and len(found) >= KEEP_FROM:
            self.cache.put(path, entry, found)
        return found

    def walk(self, path: str) -> Iterator[FileEntry]:
        """Every entry under `path` (itself first), folders before their contents;
        junctions and symbolic links are listed, not followed."""
        top = self.entry(path)
        yield top
        if top.is_dir and not top.link_target:
            yield from self._walk_children(top.path)

    def _walk_children(self, path: str) -> Iterator[FileEntry]:
        for child in self._guard(lambda: self.browser.list_dir(path), path):
            yield child
            if child.is_dir and not child.link_target:
                yield from self._walk_children(child.path)

    def damaged_in(self, path: str) -> list[DamagedRange]:
        """The damaged chunks (found so far) that hold data of the file at `path`."""
        if not self.view.damaged:
            return []
        hits = []
        for offset, size in self.browser.ranges(path):
            first = offset // self.view.chunk_size
            last = (offset + size - 1) // self.view.chunk_size
            hits += [r for n, r in self.view.damaged.items() if first <= n <= last]
        return hits

    def _guard(self, call: Callable[[], T], path: str) -> T:
        """Run a file-system read; a damaged chunk under the metadata names the folder."""
        try:
            return call()
        except OSError as exc:
            if self.view.damaged:
                ranges = ", ".join(f"chunk {r.number} (bytes {r.start}-{r.start + r.length - 1})"
                                   for r in self.view.damaged.values())
                raise ImageDamagedError(
                    f"{path} on {self.where} cannot be read: the image's {ranges} is damaged "
                    f"({next(iter(self.view.damaged.values())).problem}).",
                    "Other folders may still be readable; verify the image and capture the "
                    "disk again if it still works.", hint=Hint.VERIFY_IMAGE) from exc
            raise UnsupportedLayoutError(f"{path} on {self.where} cannot be read: {exc}.",
                                         "The file system may have been damaged before "
                                         "the capture.", hint=Hint.MOUNT_IMAGE) from exc

    def close(self) -> None:
        self.browser.close()


def browser_for(view: ImageView) -> Browser:
    fs_type = view.part.fs_type
    if fs_type == "ntfs":
        return NtfsBrowser(view, view.describe())
    if fs_type.startswith("fat"):
        return FatBrowser(view, view.describe())
    raise UnsupportedLayoutError(
        f"{view.describe()} is {fs_type or 'not a known file system'}; only NTFS and FAT "
        "partitions can be opened.", "Choose another partition.", hint=Hint.CHOOSE_PARTITION)


@contextmanager
def open_image(store_path: Path, name: str, partition: int | None = None
               ) -> Iterator[OpenedImage]:
    store = ChunkStore.open(store_path)
    loaded = store.load_image(name)
    view = open_view(store, name, partition, loaded)
    browser = browser_for(view)
    # FAT listings carry the files' cluster runs for reading: they are not kept.
    cache = (listing_cache(loaded[0].manifest_blake3, view.part.number)
             if browser.fs_type == "ntfs" else None)
    opened = OpenedImage(view, browser, cache)
    try:
        yield opened
    finally:
        opened.close()


@dataclass
class Listing:
    where: str
    partition: int
    entry: FileEntry
    entries: list[FileEntry]

    def to_dict(self) -> dict[str, object]:
        return {"partition": self.partition, "where": self.where, **self.entry.to_dict(),
                "entries": [e.to_dict() for e in self.entries]}


def list_files(store_path: Path, name: str, partition: int | None, path: str) -> Listing:
    """The entry at `path` and, for a folder, what it holds."""
    with open_image(store_path, name, partition) as opened:
        entry = opened.entry(path)
        return Listing(opened.where, opened.view.part.number, entry, opened.list_dir(path))


def image_restore_points(store_path: Path, name: str, partition: int | None = None,
                         user_hives: bool = False) -> PointsReport:
    """The restore points inside a captured NTFS volume: its shadow copies, RegBack and XP
    restore points, exactly as `restore-points list` shows them for a disk."""
    store = ChunkStore.open(store_path)
    loaded = store.load_image(name)
    first = open_view(store, name, partition, loaded)
    if first.part.fs_type != "ntfs":
        raise UnsupportedLayoutError(f"{first.describe()} is {first.part.fs_type}; restore "
                                     "points live on the NTFS Windows volume.",
                                     "Choose that partition.",
                                     hint=Hint.CHOOSE_PARTITION)
    volume = WindowsVolume(store.images_dir / name, first.part.start, first.part.size,
                           first.part.number)
    number = first.part.number
    # Each reader (the file system, the shadow copies) gets its own view and position.
    views = iter([first])

    def make_view() -> ImageView:
        return next(views, None) or open_view(store, name, number, loaded)

    with staging_dir() as staging, open_file_volume(volume, make_view, False) as opened:
        return PointsReport(volume, list_points(opened, staging, user_hives))


def _index(opened: OpenedImage) -> dict[str, FileEntry]:
    return {e.path: e for e in opened.walk("/") if e.path != "/"}


@dataclass
class ImageDiff:
    old: str
    new: str
    partition: int
    added: list[FileEntry]
    removed: list[FileEntry]
    changed: list[tuple[FileEntry, FileEntry]]

    def to_dict(self) -> dict[str, object]:
        return {"old": self.old, "new": self.new, "partition": self.partition,
                "added": [e.to_dict() for e in self.added],
                "removed": [e.to_dict() for e in self.removed],
                "changed": [{"path": new.path, "old": old.to_dict(), "new": new.to_dict()}
                            for old, new in self.changed]}


def diff_images(store_path: Path, old: str, new: str, partition: int | None = None
                ) -> ImageDiff:
    """Files added, removed and changed (size, time, type or streams) from `old` to `new`,
    from the file-system metadata only: no file data is read."""
    with open_image(store_path, old, partition) as before:
        number = before.view.part.number
        with open_image(store_path, new, number) as after:
            old_files, new_files = _index(before), _index(after)
    changed = [(old_files[p], e) for p, e in new_files.items()
               if p in old_files and _differs(old_files[p], e)]
    return ImageDiff(old, new, number,
                     [e for p, e in new_files.items() if p not in old_files],
                     [e for p, e in old_files.items() if p not in new_files],
                     changed)


def _differs(old: FileEntry, new: FileEntry) -> bool:
    if old.is_dir or new.is_dir:
        return old.is_dir != new.is_dir
    return (old.size, old.modified_ns, old.streams) != (new.size, new.modified_ns,
                                                         new.streams)


__all__ = ["ImageDiff", "Listing", "OpenedImage", "diff_images", "image_restore_points", "join",
           "list_files", "open_image"]
