"""An NTFS volume's file tree (names, sizes, BLAKE3 of content, security descriptors).

A resized volume cannot be compared with its image chunk for chunk: ntfsresize moved
clusters and rewrote metadata. What must survive is every file: the same path, size,
content (default and alternate data streams) and security descriptor. Both sides are read
with libfsntfs (pyfsntfs) through file objects: the image's volume straight from the store
(recovery/store/imageview.py), the disk's through a slice of the target. NTFS's own
metadata files ($MFT, $Bitmap, $LogFile, ...) are left out: a resize changes them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import blake3
import pyfsntfs

from recovery.errors import VolumeStateError

_READ = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileFacts:
    kind: str  # "file" or "dir"
    size: int
    content: str  # BLAKE3 of the default stream, then of each alternate stream, joined
    security: str  # BLAKE3 of the security descriptor


def file_tree(volume: io.RawIOBase, what: str) -> dict[str, FileFacts]:
    """Every file and directory of the NTFS volume in `volume`, by path."""
    handle = pyfsntfs.volume()
    try:
        handle.open_file_object(volume)
    except OSError as exc:
        raise VolumeStateError(f"The NTFS volume of {what} cannot be read: {exc}",
                               "The volume is damaged; run the restore again.") from exc
    try:
        return dict(_walk(handle.get_root_directory(), ""))
    finally:
        handle.close()


def compare_trees(image: dict[str, FileFacts], disk: dict[str, FileFacts],
                  where: str) -> list[str]:
    """Every difference, as sentences; [] when the disk holds exactly the image's files."""
    problems = [f"{where}: {path} is missing" for path in sorted(image.keys() - disk.keys())]
    problems += [f"{where}: {path} is on the disk but not in the image"
                 for path in sorted(disk.keys() - image.keys())]
    for path in sorted(image.keys() & disk.keys()):
        want, got = image[path], disk[path]
        for label, a, b in (("type", want.kind, got.kind), ("size", want.size, got.size),
                            ("content", want.content, got.content),
                            ("security descriptor", want.security, got.security)):
            if a != b:
                problems.append(f"{where}: {path}: {label} differs from the image")
    return problems


def _walk(directory: Any, prefix: str) -> Iterator[tuple[str, FileFacts]]:
    for entry in directory.sub_file_entries:
        name = entry.name
        if name in (".", "..") or (not prefix and name.startswith("$")):
            continue
        path = f"{prefix}/{name}"
        is_dir = bool(entry.has_directory_entries_index())
        yield path, _facts(entry, is_dir)
        if is_dir:
            yield from _walk(entry, path)


def _facts(entry: Any, is_dir: bool) -> FileFacts:
    digests = []
    if not is_dir and entry.has_default_data_stream():
        digests.append(_hash_stream(entry, entry.size))
    for stream in entry.alternate_data_streams:
        digests.append(f"{stream.name}:{_hash_stream(stream, stream.size)}")
    security = entry.security_descriptor_data or b""
    return FileFacts("dir" if is_dir else "file", 0 if is_dir else entry.size,
                     ",".join(digests), blake3.blake3(security).hexdigest())


def _hash_stream(stream: Any, size: int) -> str:
    hasher = blake3.blake3()
    offset = 0
    while offset < size:
        data = stream.read_buffer_at_offset(min(_READ, size - offset), offset)
        if not data:
            break
        hasher.update(data)
        offset += len(data)
    result: str = hasher.hexdigest()
    return result
