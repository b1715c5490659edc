"""The kernel's mount table (/proc/self/mountinfo) and swap list (/proc/swaps), parsed.

Not a tool wrapper: the kernel's own files are the ground truth for "is this disk in use".
mountinfo gives each mount's device number (major:minor) and its source; both are needed,
because FUSE mounts (ntfs-3g) carry an anonymous device number and name the real device
only in the source field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
SWAPS = Path("/proc/swaps")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str  # path inside the file system that is mounted (bind mounts: not "/")
    mountpoint: str
    fs_type: str
    source: str  # "/dev/sda1", "/dev/loop0p2", or a name such as "tmpfs"

    @property
    def devnum(self) -> tuple[int, int]:
        return self.major, self.minor


def _unescape(field: str) -> str:
    # The kernel escapes space, tab, newline and backslash as \040, \011, \012, \134.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse mountinfo text (see proc(5)); lines that do not parse are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3 or ":" not in fields[2]:
            continue
        major, minor = fields[2].split(":", 1)
        mounts.append(Mount(
            mount_id=int(fields[0]), parent_id=int(fields[1]), major=int(major),
            minor=int(minor), root=_unescape(fields[3]), mountpoint=_unescape(fields[4]),
            fs_type=fields[separator + 1], source=_unescape(fields[separator + 2])))
    return mounts


def read_mounts(path: Path = MOUNTINFO) -> list[Mount]:
    return parse_mountinfo(path.read_text())


def block_backed(mounts: Iterable[Mount]) -> list[Mount]:
    """Mounts of block devices only (drops proc, tmpfs, cgroup and other virtual file systems)."""
    return [m for m in mounts if m.source.startswith("/dev/") or m.major != 0]


def read_swaps(path: Path = SWAPS) -> list[str]:
    """Device nodes or files in use as swap."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    return [_unescape(line.split()[0]) for line in lines if line.strip()]


def mount_containing(path: Path, mounts: Iterable[Mount], *, resolve: bool = True
                     ) -> Mount | None:
    """The mount whose mount point is the deepest ancestor of `path` (the one that holds it).

    `resolve=False` takes `path` as it is: for mount tables recorded on another machine.
    """
    target = os.path.realpath(path) if resolve else os.path.normpath(path)
    best: Mount | None = None
    for mount in mounts:
        point = mount.mountpoint
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        # Later entries shadow earlier ones mounted on the same point.
        if inside and (best is None or len(point) >= len(best.mountpoint)):
            best = mount
    return best
