"""Deleting images and reclaiming the chunks no image uses any more.

Chunks are shared between images, so deleting an image only removes its folder; `collect`
then deletes every chunk no remaining image refers to. It refuses while any image is
incomplete or damaged: an interrupted capture's chunks are not in any index yet, and a
damaged index cannot say what it needs, so deleting "unused" chunks could destroy data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import StoreError
from recovery.store import files
from recovery.store.access import StoreAccess
from recovery.store.images import PARTIAL, check_name, list_all, load, stored_area_digests


@dataclass(frozen=True)
class PruneReport:
    chunks_removed: int
    bytes_freed: int
    chunks_kept: int
    temp_files_removed: int

    def to_dict(self) -> dict[str, int]:
        return {"chunks_removed": self.chunks_removed, "bytes_freed": self.bytes_freed,
                "chunks_kept": self.chunks_kept, "temp_files_removed": self.temp_files_removed}


def remove_image(store: StoreAccess, name: str) -> None:
    """Delete an image (complete, incomplete or damaged); its chunks stay until `collect`."""
    check_name(name)
    for folder in (store.images_dir / name, store.images_dir / f"{name}{PARTIAL}"):
        if folder.is_dir():
            # Rename first: a half-deleted folder is then hidden, never listed as damaged.
            doomed = store.images_dir / f".{folder.name}.deleting-{os.getpid()}"
            os.rename(folder, doomed)
            files.fsync_dir(store.images_dir)
            files.remove_tree(doomed)
            return
    load(store.images_dir, name)  # raises ImageNotFoundError naming the images there


def collect(store: StoreAccess) -> PruneReport:
    """Delete chunks that no complete image refers to, and temp files of dead writers."""
    needed: set[bytes] = set()
    for info in list_all(store.images_dir):
        if not info.complete:
            raise StoreError(
                f"Image {info.name} in {store.root} is {info.state}; unused chunks cannot be "
                "told apart from the chunks it needs.",
                "Finish the interrupted capture (run it again) or delete that image, then "
                "retry.")
        manifest, index = load(store.images_dir, info.name)
        needed |= index.stored_digests()
        needed |= stored_area_digests(manifest)
    removed = freed = kept = temps = 0
    for directory in sorted(store.chunks_dir.iterdir()):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.name.endswith(".tmp"):
                temps += _remove_stale_temp(path)
            elif _digest_of(path) in needed:
                kept += 1
            else:
                freed += path.stat().st_size
                path.unlink()
                removed += 1
        files.fsync_dir(directory)
    return PruneReport(removed, freed, kept, temps)


def _digest_of(path: Path) -> bytes | None:
    try:
        return bytes.fromhex(path.name)
    except ValueError:
        return None


def _remove_stale_temp(path: Path) -> int:
    """Temp files are '.<name>.<pid>-<n>.tmp'; remove those whose writer has died."""
    try:
        pid = int(path.name.rsplit(".", 2)[-2].split("-")[0])
    except (IndexError, ValueError):
        return 0
    if pid != os.getpid() and _alive(pid):
        return 0
    path.unlink(missing_ok=True)
    return 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
