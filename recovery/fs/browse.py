"""Files and folders of a captured volume, read through a file object (an image view).

One interface for NTFS (libfsntfs, which handles compressed, sparse and fragmented files,
alternate data streams and Unicode names) and FAT (recovery.fs.fatdir). Paths are
"/"-separated from the volume root, as a technician types them: "/Users/Bob/Documents".
Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pyfsntfs

from recovery.errors import Hint, UnsupportedLayoutError

READ_BLOCK = 1024 * 1024
_MFT_NUMBER = (1 << 48) - 1  # a file reference is the MFT entry number + a sequence number
# FILETIME (100 ns ticks since 1601) of the POSIX epoch.
_EPOCH_TICKS = 116444736000000000
# $STANDARD_INFORMATION file attribute flags worth showing.
_NTFS_FLAGS = ((0x1, "readonly"), (0x2, "hidden"), (0x4, "system"), (0x20, "archive"),
               (0x200, "sparse"), (0x400, "reparse"), (0x800, "compressed"),
               (0x4000, "encrypted"))


@dataclass(frozen=True)
class FileEntry:
    path: str  # "/Users/Bob/a.txt"; the root is "/"
    name: str
    is_dir: bool
    size: int
    modified_ns: int  # POSIX nanoseconds; 0 when the file system does not record it
    attributes: tuple[str, ...] = ()
    streams: tuple[tuple[str, int], ...] = ()  # NTFS alternate data streams: name, size
    link_target: str = ""  # junctions and symbolic links: where they point (not followed)
    ranges: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)

    @property
    def modified(self) -> str:
        if not self.modified_ns:
            return ""
        when = datetime.fromtimestamp(self.modified_ns / 1e9, UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "name": self.name,
                                  "type": "folder" if self.is_dir else "file",
                                  "size": self.size, "modified": self.modified,
                                  "attributes": list(self.attributes)}
        if self.streams:
            out["streams"] = [{"name": n, "size": s} for n, s in self.streams]
        if self.link_target:
            out["link_target"] = self.link_target
        return out


class Browser(Protocol):
    fs_type: str

    def stat(self, path: str) -> FileEntry | None: ...

    def list_dir(self, path: str) -> list[FileEntry]: ...

    def read(self, path: str, stream: str = "") -> Iterator[bytes]: ...

    def ranges(self, path: str) -> list[tuple[int, int]]: ...

    def close(self) -> None: ...


def normal_path(path: str) -> str:
    """"/a/b" from "a\\b", "/a/b/", "a/./b"; the root is "/"."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsupportedLayoutError(f"The path {path} contains '..'.",
                                     "Give the path from the volume root, e.g. /Users.")
    return "/" + "/".join(parts)


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def filetime_ns(value: int) -> int:
    return max(0, (value - _EPOCH_TICKS) * 100) if value else 0


class NtfsBrowser:
    """An NTFS volume through libfsntfs; `source` is any seekable file object."""

    fs_type = "ntfs"

    def __init__(self, source: Any, where: str) -> None:
        self.where = where
        self._numbers: dict[str, int] = {}
        self._volume = pyfsntfs.volume()
        try:
            self._volume.open_file_object(source)
        except OSError as exc:
            raise UnsupportedLayoutError(
                f"The NTFS file system of {where} cannot be read: {exc}.",
                "The volume may have been damaged before the capture; restore the image "
                "and run chkdsk.", hint=Hint.MOUNT_IMAGE) from exc

    def close(self) -> None:
        self._volume.close()

    def _entry(self, path: str) -> Any:
        if path == "/":
            return self._volume.get_root_directory()
        # libfsntfs looks names up case-insensitively; a folder listed before is read by
        # MFT number, so "Same.txt" and "same.txt" (POSIX-namespace twins) stay apart.
        number = self._numbers.get(path)
        if number is not None:
            return self._volume.get_file_entry(number)
        entry = self._volume.get_file_entry_by_path(path.replace("/", "\\"))
        if entry is not None and entry.name != path.rsplit("/", 1)[1]:
            parent = path.rsplit("/", 1)[0] or "/"
            self.list_dir(parent)
            number = self._numbers.get(path)
            return None if number is None else self._volume.get_file_entry(number)
        return entry

    def stat(self, path: str) -> FileEntry | None:
        path = normal_path(path)
        entry = self._entry(path)
        if entry is None:
            return None
        name = path.rsplit("/", 1)[1] if path != "/" else ""
        return self._describe(entry, path, name)

    def list_dir(self, path: str) -> list[FileEntry]:
        path = normal_path(path)
        entry = self._entry(path)
        if entry is None or not entry.has_directory_entries_index():
            return []
        found = []
        for child in entry.sub_file_entries:
            name = child.name
            # The root's $MFT, $Bitmap, ... are the file system itself, not the user's files.
            if path == "/" and name.startswith("$"):
                continue
            found.append(self._describe(child, join(path, name), name))
            self._numbers[join(path, name)] = child.file_reference & _MFT_NUMBER
        return found

    def _describe(self, entry: Any, path: str, name: str) -> FileEntry:
        flags = entry.file_attribute_flags or 0
        is_dir = bool(entry.has_directory_entries_index())
        streams = tuple((s.name, s.size) for s in entry.alternate_data_streams)
        target = ""
        if flags & 0x400:
            try:
                target = entry.symbolic_link_target or ""
            except OSError:
                target = ""
        return FileEntry(path, name, is_dir, 0 if is_dir else int(entry.size or 0),
                         filetime_ns(entry.get_modification_time_as_integer()),
                         tuple(label for bit, label in _NTFS_FLAGS if flags & bit),
                         streams, target)

    def read(self, path: str, stream: str = "") -> Iterator[bytes]:
        entry = self._entry(normal_path(path))
        if entry is None:
            return
        data = entry.get_alternate_data_stream_by_name(stream) if stream else entry
        size = int(data.size or 0)
        offset = 0
        while offset < size:
            block: bytes = data.read_buffer_at_offset(min(READ_BLOCK, size - offset), offset)
            if not block:
                raise OSError(f"read of {path} stopped at byte {offset} of {size}")
            offset += len(block)
            yield block

    def ranges(self, path: str) -> list[tuple[int, int]]:
        """The byte ranges of the volume that hold the file's data (sparse runs left out)."""
        entry = self._entry(normal_path(path))
        if entry is None:
            return []
        found = []
        for index in range(entry.number_of_extents):
            offset, size, flags = entry.get_extent(index)
            if not flags & 1:  # 1: a sparse run, read as zeros without touching the disk
                found.append((offset, size))
        return found
