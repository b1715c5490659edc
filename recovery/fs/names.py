"""Which file names a destination file system can store, and what to call the others.

NTFS allows names that FAT, exFAT and Windows itself refuse (':' from a POSIX-namespace
name, a trailing dot, 'CON'), and Linux file systems count 255 bytes of UTF-8, not 255
UTF-16 units. Extraction renames such files and reports every rename; none is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# File systems that keep Windows' naming rules (and fold case): what a customer's USB
# drive usually is. fuseblk is ntfs-3g or exFAT through FUSE: both end up read by Windows.
WINDOWS_RULES = frozenset({"vfat", "msdos", "exfat", "ntfs", "ntfs3", "fuseblk"})
_WINDOWS_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_POSIX_BAD = re.compile(r"[/\x00]")
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$", re.IGNORECASE)
MAX_UNITS = 255  # UTF-16 code units (Windows rules) or UTF-8 bytes (Linux file systems)


def _length(name: str, windows: bool) -> int:
    return len(name.encode("utf-16-le")) // 2 if windows else len(name.encode())


def _shorten(name: str, windows: bool, room: int = MAX_UNITS) -> str:
    """Cut the stem (keeping the extension) until the name fits."""
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext, dot = name, "", ""
    while stem and _length(stem + dot + ext, windows) > room:
        stem = stem[:-1]
    return (stem + dot + ext) if stem else name[:room // 4]


def storable(name: str, windows: bool) -> str:
    """`name` as the destination can store it (unchanged when it already can)."""
    if windows:
        fixed = _WINDOWS_BAD.sub("_", name).rstrip(" .") or "_"
        if _RESERVED.match(fixed):
            fixed = "_" + fixed
    else:
        fixed = _POSIX_BAD.sub("_", name)
    return fixed if _length(fixed, windows) <= MAX_UNITS else _shorten(fixed, windows)


@dataclass
class FolderNames:
    """Names given so far in one destination folder, to keep renamed files apart."""

    windows: bool
    taken: set[str] = field(default_factory=set)

    def _key(self, name: str) -> str:
        return name.lower() if self.windows else name

    def claim(self, name: str) -> str:
        """The name to write `name` under: storable and not yet used in this folder."""
        fixed = storable(name, self.windows)
        candidate, number = fixed, 2
        while self._key(candidate) in self.taken:
            stem, dot, ext = fixed.rpartition(".")
            stem, ext = (stem, dot + ext) if dot and stem else (fixed, "")
            candidate = _shorten(f"{stem} ({number}){ext}", self.windows)
            number += 1
        self.taken.add(self._key(candidate))
        return candidate
