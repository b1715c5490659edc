"""Byte ranges (start, length): used blocks of a file system, written ranges of a disk.

Kept as plain sorted, non-overlapping tuples so that millions of them stay cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

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

    Real bitmaps are long runs of 0x00 and 0xFF bytes: all-zero blocks are skipped by one
    C-level comparison, 0xFF runs are found by regex, and only the mixed bytes at their
    edges are split into bit runs, from a table. Pieces arrive in order, so touching ones
    are merged on the fly instead of sorting millions of one-bit runs.
    """
    data = bitmap[: (count + 7) // 8]
    runs: list[Extent] = []  # in bits
    run_start = run_end = -1
    for start, length in _bit_pieces(data):
        if start == run_end:
            run_end += length
            continue
        if run_end > 0:
            runs.append((run_start, run_end - run_start))
        run_start, run_end = start, start + length
    if run_end > 0:
        runs.append((run_start, run_end - run_start))
    return [(s * unit, min(n, count - s) * unit) for s, n in runs if s < count]


def _bit_pieces(data: bytes) -> Iterator[Extent]:
    """(first bit, bit count) of every set stretch, in order; touching pieces may follow."""
    view = memoryview(data)
    for block in range(0, len(data), _BLOCK):
        end = min(block + _BLOCK, len(data))
        if view[block:end] == _ZEROS[: end - block]:
            continue
        for match in _NONZERO.finditer(data, block, end):
            base = match.start()
            for sub in _FULL_OR_MIXED.finditer(match.group()):
                first_bit = (base + sub.start()) * 8
                value = sub.group()[0]
                if value == 0xFF:
                    yield first_bit, len(sub.group()) * 8
                    continue
                for offset, length in _RUNS_IN_BYTE[value]:
                    yield first_bit + offset, length


def _runs_in_byte(value: int) -> tuple[Extent, ...]:
    runs: list[Extent] = []
    for bit in range(8):
        if value >> bit & 1:
            if runs and runs[-1][0] + runs[-1][1] == bit:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((bit, 1))
    return tuple(runs)


_BLOCK = 1 << 16
_ZEROS = bytes(_BLOCK)
_NONZERO = re.compile(rb"[^\x00]+")
_FULL_OR_MIXED = re.compile(rb"\xff+|[^\xff]")
_RUNS_IN_BYTE = tuple(_runs_in_byte(value) for value in range(256))
