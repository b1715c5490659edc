"""Byte ranges (start, length): used blocks of a file system, written ranges of a disk.

Kept as plain sorted, non-overlapping tuples so that millions of them stay cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Extent = tuple[int, int]


def normalise(extents: Iterable[Extent]) -> list[Extent]:
    """Sort, drop empty ranges and merge touching or overlapping ones."""
    merged: list[Extent] = []
    for start, length in sorted(e for e in extents if e[1] > 0):
        if merged and start <= merged[-1][0] + merged[-1][1]:
            last_start, last_length = merged[-1]
            merged[-1] = (last_start, max(last_length, start + length - last_start))
        else:
            merged.append((start, length))
    return merged


def total(extents: Iterable[Extent]) -> int:
    return sum(length for _, length in extents)


def clip(extents: list[Extent], start: int, end: int) -> list[Extent]:
    """The parts of sorted `extents` inside [start, end), in absolute offsets."""
    from bisect import bisect_right

    out: list[Extent] = []
    i = max(bisect_right(extents, (start, -1)) - 1, 0)
    while i < len(extents):
        e_start, e_len = extents[i]
        if e_start >= end:
            break
        lo, hi = max(e_start, start), min(e_start + e_len, end)
        if hi > lo:
            out.append((lo, hi - lo))
        i += 1
    return out


def from_bitmap(bitmap: bytes, unit: int, count: int) -> list[Extent]:
    """Runs of set bits (LSB first, as NTFS $Bitmap and FAT maps use) as byte extents.

    Real bitmaps are long runs of 0x00 and 0xFF bytes; regexes find those at C speed and
    only the mixed bytes at their edges are looked at bit by bit.
    """
    data = bitmap[: (count + 7) // 8]
    runs: list[Extent] = []  # in bit units, may touch; merged below
    for match in _NONZERO.finditer(data):
        pos = match.start()
        for sub in _FULL_OR_MIXED.finditer(match.group()):
            first_bit = (pos + sub.start()) * 8
            chunk = sub.group()
            if chunk[0] == 0xFF:
                runs.append((first_bit, len(chunk) * 8))
                continue
            for bit in range(8):
                if chunk[0] >> bit & 1:
                    runs.append((first_bit + bit, 1))
    clipped = [(s, min(n, count - s)) for s, n in runs if s < count]
    return [(s * unit, n * unit) for s, n in normalise(clipped)]


_NONZERO = re.compile(rb"[^\x00]+")
_FULL_OR_MIXED = re.compile(rb"\xff+|[^\xff]")
