"""FAT12/16/32 folders and files read through a file object (the EFI System Partition of
an image): long file names, 8.3 names with their case flags, cluster chains. Read-only.

mtools needs a file name; a captured partition is a view assembled from chunks, so this
small reader walks the directory tables itself (the boot sector parser is recovery.fs.fat).
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Iterator
from typing import Any

from recovery.errors import UnsupportedLayoutError
from recovery.fs.browse import FileEntry, join, normal_path
from recovery.fs.fat import FatBootSector, parse_boot_sector

_ENTRY = 32
_LFN = 0x0F
_DIR, _LABEL = 0x10, 0x08
_FLAGS = ((0x01, "readonly"), (0x02, "hidden"), (0x04, "system"), (0x20, "archive"))
_END = {"fat12": 0xFF8, "fat16": 0xFFF8, "fat32": 0x0FFFFFF8}


class FatBrowser:
    fs_type = "fat"

    def __init__(self, source: Any, where: str) -> None:
        self.source = source
        self.where = where
        self.boot: FatBootSector = parse_boot_sector(self._read(0, 512), where)
        size = self.boot.fat_sectors * self.boot.bytes_per_sector
        self.fat = self._read(self.boot.fat_offset, size)
        self._clusters: dict[str, int] = {"/": 0}
        self._found: dict[str, tuple[FileEntry, int]] = {}

    def close(self) -> None:
        """Nothing to release: the view belongs to the caller."""

    def _read(self, offset: int, length: int) -> bytes:
        self.source.seek(offset)
        data: bytes = self.source.read(length)
        return data

    # --- clusters ------------------------------------------------------------------------
    def _next(self, cluster: int) -> int:
        kind = self.boot.fat_type
        if kind == "fat12":
            pair = int.from_bytes(self.fat[cluster * 3 // 2: cluster * 3 // 2 + 2], "little")
            return pair >> 4 if cluster & 1 else pair & 0xFFF
        if kind == "fat16":
            return int.from_bytes(self.fat[cluster * 2: cluster * 2 + 2], "little")
        return int.from_bytes(self.fat[cluster * 4: cluster * 4 + 4], "little") & 0x0FFFFFFF

    def _chain(self, first: int) -> list[int]:
        chain: list[int] = []
        cluster = first
        end = _END[self.boot.fat_type]
        while 2 <= cluster < end and cluster - 2 < self.boot.clusters:
            if len(chain) > self.boot.clusters:  # a loop in the FAT
                raise UnsupportedLayoutError(f"The FAT of {self.where} has a cluster loop.",
                                             "Run fsck.fat on the restored partition.")
            chain.append(cluster)
            cluster = self._next(cluster)
        return chain

    def _cluster_offset(self, cluster: int) -> int:
        return self.boot.data_offset + (cluster - 2) * self.boot.cluster_size

    def _runs(self, first: int, size: int | None) -> Iterator[tuple[int, int]]:
        """(offset, length) runs of a chain, contiguous clusters merged, `size` bytes long."""
        left = size if size is not None else 1 << 62
        chain = self._chain(first)
        index = 0
        while index < len(chain) and left > 0:
            start = index
            while index + 1 < len(chain) and chain[index + 1] == chain[index] + 1:
                index += 1
            index += 1
            length = min(left, (index - start) * self.boot.cluster_size)
            left -= length
            yield self._cluster_offset(chain[start]), length

    # --- directories ---------------------------------------------------------------------
    def _table(self, cluster: int) -> bytes:
        if cluster == 0 and self.boot.fat_type != "fat32":
            start = self.boot.fat_offset + self.boot.fat_count * self.boot.fat_sectors * \
                self.boot.bytes_per_sector
            return self._read(start, self.boot.root_entries * _ENTRY)
        first = cluster or self.boot.root_cluster
        return b"".join(self._read(o, n) for o, n in self._runs(first, None))

    def _entries(self, folder: str) -> Iterator[tuple[FileEntry, int]]:
        table = self._table(self._clusters[folder])
        long_parts: list[tuple[int, str]] = []
        for at in range(0, len(table) - _ENTRY + 1, _ENTRY):
            raw = table[at: at + _ENTRY]
            if raw[0] == 0:
                return
            if raw[0] == 0xE5:
                long_parts = []
                continue
            if raw[11] == _LFN:
                long_parts.append((raw[13], _lfn_piece(raw)))
                continue
            name = _long_name(long_parts, raw[:11]) or _short_name(raw)
            long_parts = []
            if raw[11] & _LABEL or name in (".", ".."):
                continue
            yield self._describe(folder, name, raw)

    def _describe(self, folder: str, name: str, raw: bytes) -> tuple[FileEntry, int]:
        attr = raw[11]
        high, time, date, low, size = struct.unpack_from("<HHHHI", raw, 20)
        is_dir = bool(attr & _DIR)
        entry = FileEntry(join(folder, name), name, is_dir, 0 if is_dir else size,
                          _dos_time_ns(date, time),
                          tuple(label for bit, label in _FLAGS if attr & bit))
        return entry, (high << 16 | low) if self.boot.fat_type == "fat32" else low

    def _find(self, path: str) -> tuple[FileEntry, int] | None:
        """The entry at `path` (any case: FAT names are case-insensitive) and its first
        cluster; its path is spelled as the directory spells it."""
        if path == "/":
            return FileEntry("/", "", True, 0, 0), 0
        key = path.lower()
        if key in self._found:
            return self._found[key]
        parent_path, _, name = path.rpartition("/")
        parent = self._find(parent_path or "/")
        if parent is None or not parent[0].is_dir:
            return None
        self._clusters[parent[0].path] = parent[1]
        for entry, cluster in self._entries(parent[0].path):
            self._found[entry.path.lower()] = (entry, cluster)
        return self._found.get(join(parent[0].path, name).lower())

    # --- Browser -------------------------------------------------------------------------
    def stat(self, path: str) -> FileEntry | None:
        found = self._find(normal_path(path))
        return found[0] if found else None

    def list_dir(self, path: str) -> list[FileEntry]:
        found = self._find(normal_path(path))
        if found is None or not found[0].is_dir:
            return []
        folder = found[0].path
        self._clusters[folder] = found[1]
        listed = list(self._entries(folder))
        for entry, cluster in listed:
            if entry.is_dir:
                self._clusters[entry.path] = cluster
        return [entry for entry, _ in listed]

    def read(self, path: str, stream: str = "") -> Iterator[bytes]:
        found = self._find(normal_path(path))
        if found is None or stream or found[0].is_dir:
            return
        entry, first = found
        done = 0
        for offset, length in self._runs(first, entry.size):
            for at in range(0, length, 1024 * 1024):
                block = self._read(offset + at, min(1024 * 1024, length - at))
                done += len(block)
                yield block
        if done != entry.size:
            raise OSError(f"{path}: the cluster chain ends after {done} of {entry.size} bytes")

    def ranges(self, path: str) -> list[tuple[int, int]]:
        found = self._find(normal_path(path))
        if found is None or found[0].is_dir:
            return []
        return list(self._runs(found[1], found[0].size))


def _lfn_piece(raw: bytes) -> str:
    units = raw[1:11] + raw[14:26] + raw[28:32]
    text = units.decode("utf-16-le", errors="replace")
    return text.split("\0", 1)[0].rstrip("\uffff")


def _long_name(parts: list[tuple[int, str]], short: bytes) -> str:
    """The long name, when its pieces carry the checksum of this 8.3 entry."""
    if not parts:
        return ""
    checksum = 0
    for byte in short:
        checksum = (((checksum & 1) << 7) + (checksum >> 1) + byte) & 0xFF
    if any(check != checksum for check, _ in parts):
        return ""
    return "".join(piece for _, piece in reversed(parts))


def _short_name(raw: bytes) -> str:
    base = raw[:8].replace(b"\x05", b"\xe5", 1) if raw[0] == 5 else raw[:8]
    stem = base.decode("cp437").rstrip()
    ext = raw[8:11].decode("cp437").rstrip()
    if raw[12] & 0x08:
        stem = stem.lower()
    if raw[12] & 0x10:
        ext = ext.lower()
    return f"{stem}.{ext}" if ext else stem


def _dos_time_ns(date: int, time: int) -> int:
    """FAT keeps local time without a zone; it is taken as UTC, as Linux's vfat does with
    tz=UTC."""
    if not date:
        return 0
    year, month, day = 1980 + (date >> 9), (date >> 5) & 0xF, date & 0x1F
    hour, minute, second = time >> 11, (time >> 5) & 0x3F, (time & 0x1F) * 2
    try:
        stamp = calendar.timegm((year, max(month, 1), max(day, 1), hour, minute, second))
    except ValueError:
        return 0
    return stamp * 1_000_000_000
