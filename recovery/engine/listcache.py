"""Folder listings of captured volumes, kept between runs of the program.

Reading a folder of 100,000 files from an image means decoding 100,000 MFT records out of
the chunks: seconds, every time a new `recovery files` process opens the image. An image
never changes once complete (its manifest_blake3 covers its index and so every chunk), so a
listing read once stays true: it is kept under /run (RAM on the live system; gone at the
next boot) and the next listing of that folder is read from there.

Nothing is written to the store (it may be read-only or a share). The cache is an aid, not
a record: a file that cannot be read or written here is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from recovery.fs.browse import FileEntry

DEFAULT_ROOT = Path("/run/recovery/listings")
# Newest listings kept; a folder of 100,000 files takes about 12 MB.
MAX_BYTES = 64 * 1024 * 1024
# Only folders this big are kept: smaller ones list fast from the image anyway, and a walk
# of a whole volume (an extraction of "/") must not write a file per folder.
KEEP_FROM = 500
_FORMAT = 1


@dataclass(frozen=True)
class ListingCache:
    """The kept listings of one partition of one image."""

    folder: Path
    root: Path

    def get(self, path: str) -> tuple[FileEntry, list[FileEntry]] | None:
        """The folder's own entry and what it holds, or None when not kept."""
        try:
            kept = json.loads(self._file(path).read_text(encoding="utf-8"))
            if kept.get("format") != _FORMAT or kept.get("path") != path:
                return None
            return _entry(kept["entry"]), [_entry(row) for row in kept["entries"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, path: str, entry: FileEntry, entries: list[FileEntry]) -> None:
        text = json.dumps({"format": _FORMAT, "path": path, "entry": _row(entry),
                           "entries": [_row(e) for e in entries]}, ensure_ascii=False)
        final = self._file(path)
        temp = final.with_name(f".{final.name}.{os.getpid()}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, final)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()
            return
        _trim(self.root, MAX_BYTES)

    def _file(self, path: str) -> Path:
        return self.folder / f"{blake3.blake3(path.encode()).hexdigest()[:32]}.json"


def listing_cache(manifest_blake3: str, partition: int,
                  root: Path | None = None) -> ListingCache | None:
    """The cache for one partition of the image whose manifest hashes to `manifest_blake3`;
    None when there is no such hash (an image written before it existed) or the cache is
    turned off (RECOVERY_LISTING_CACHE=off)."""
    setting = os.environ.get("RECOVERY_LISTING_CACHE", "")
    if not manifest_blake3 or setting == "off":
        return None
    base = root or (Path(setting) if setting else DEFAULT_ROOT)
    return ListingCache(base / f"{manifest_blake3[:32]}-{partition}", base)


def _row(entry: FileEntry) -> list[object]:
    return [entry.path, entry.name, entry.is_dir, entry.size, entry.modified_ns,
            list(entry.attributes), [list(s) for s in entry.streams], entry.link_target]


def _entry(row: list[Any]) -> FileEntry:
    """A FileEntry from its kept row. The files are written only by this program, whole
    (renamed into place), under a folder only root reads: their shape is not re-checked
    field by field, which would double the time of a 100,000-file listing."""
    path, name, is_dir, size, modified_ns, attributes, streams, link_target = row
    return FileEntry(path, name, is_dir, size, modified_ns, tuple(attributes),
                     tuple((n, s) for n, s in streams), link_target)


def _trim(root: Path, limit: int) -> None:
    """Remove the oldest kept listings until the cache is under `limit` bytes."""
    try:
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in root.glob("*/*.json")]
    except OSError:
        return
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            path.unlink()
        total -= size
