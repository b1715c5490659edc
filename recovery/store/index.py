"""index.bin: per captured partition, its used extents and its chunk list, compact and fast.

A 2 TB disk has about 500 k chunks and a million extents; YAML would take minutes to
load, this format loads in well under a second.

Layout (all integers little-endian), the whole file one zstd frame:

    header      8s magic b"RCVIDX01", u32 partition_count, u32 reserved (0)
    partition   u32 number, u32 reserved (0), u64 extent_count, u64 chunk_count
                extent_count * (u64 start, u64 length)  used extents, relative to the
                                                        partition start, sorted
                chunk_count * u64                       chunk numbers (offset // chunk_size),
                                                        ascending
                chunk_count * u8                        1 = all-zero chunk (not stored)
                chunk_count * 32 bytes                  BLAKE3 of the uncompressed chunk

Chunks that hold no used byte are not listed; restore leaves their range alone.
"""

from __future__ import annotations

import gc
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import zstandard

from recovery.model.extents import Extent

MAGIC = b"RCVIDX01"
DIGEST_SIZE = 32
_HEADER = struct.Struct("<8sII")
_PART = struct.Struct("<IIQQ")
# Mostly random digests: a higher level buys almost nothing and costs seconds at 2 TB.
_LEVEL = 3


class IndexFormatError(ValueError):
    """index.bin does not parse; the store turns this into ImageDamagedError."""


class ChunkRef(NamedTuple):
    """One chunk of a partition: a NamedTuple because a 2 TB disk has 500 k of them."""

    number: int  # the chunk covers [number * chunk_size, ...) of the partition
    digest: bytes  # 32 bytes, BLAKE3 of the uncompressed chunk (zero chunks too)
    zero: bool  # all zeros: not stored, restore writes zeros over its used extents


@dataclass(frozen=True)
class PartitionIndex:
    number: int
    extents: tuple[Extent, ...] = ()  # used bytes, relative to the partition start, sorted
    chunks: tuple[ChunkRef, ...] = ()  # chunks holding used bytes, ascending numbers

    def stored_digests(self) -> set[bytes]:
        return {ref.digest for ref in self.chunks if not ref.zero}


@dataclass(frozen=True)
class ImageIndex:
    """The chunk lists of every captured partition, in partition-number order."""

    partitions: tuple[PartitionIndex, ...] = ()

    def partition(self, number: int) -> PartitionIndex | None:
        for part in self.partitions:
            if part.number == number:
                return part
        return None

    def stored_digests(self) -> set[bytes]:
        """Every chunk the image needs from the store (zero chunks are never stored)."""
        found: set[bytes] = set()
        for part in self.partitions:
            found |= part.stored_digests()
        return found


def encode(index: ImageIndex) -> bytes:
    pieces = [_HEADER.pack(MAGIC, len(index.partitions), 0)]
    for part in sorted(index.partitions, key=lambda p: p.number):
        pieces.append(_PART.pack(part.number, 0, len(part.extents), len(part.chunks)))
        pieces.append(_u64(value for extent in part.extents for value in extent))
        pieces.append(_u64(ref.number for ref in part.chunks))
        pieces.append(bytes(1 if ref.zero else 0 for ref in part.chunks))
        digests = b"".join(ref.digest for ref in part.chunks)
        if len(digests) != DIGEST_SIZE * len(part.chunks):
            raise ValueError(f"partition {part.number}: every digest must be {DIGEST_SIZE} "
                             "bytes")
        pieces.append(digests)
    return zstandard.ZstdCompressor(level=_LEVEL).compress(b"".join(pieces))


def decode(blob: bytes) -> ImageIndex:
    try:
        raw = zstandard.ZstdDecompressor().decompress(blob)
    except zstandard.ZstdError as exc:
        raise IndexFormatError(f"not a zstd frame ({exc})") from exc
    view = memoryview(raw)
    if len(raw) < _HEADER.size:
        raise IndexFormatError("shorter than its header")
    magic, count, _ = _HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        raise IndexFormatError("wrong magic")
    parts, pos = [], _HEADER.size
    with _no_gc():
        for _ in range(count):
            part, pos = _decode_partition(view, pos)
            parts.append(part)
    if pos != len(raw):
        raise IndexFormatError(f"{len(raw) - pos} trailing bytes")
    return ImageIndex(tuple(parts))


def _decode_partition(view: memoryview, pos: int) -> tuple[PartitionIndex, int]:
    if pos + _PART.size > len(view):
        raise IndexFormatError("truncated partition header")
    number, _, extent_count, chunk_count = _PART.unpack_from(view, pos)
    pos += _PART.size
    needed = extent_count * 16 + chunk_count * (8 + 1 + DIGEST_SIZE)
    if pos + needed > len(view):
        raise IndexFormatError(f"partition {number}: truncated")
    flat = _read_u64(view, pos, extent_count * 2)
    pos += extent_count * 16
    numbers = _read_u64(view, pos, chunk_count)
    pos += chunk_count * 8
    zeros = [flag == 1 for flag in view[pos: pos + chunk_count]]
    pos += chunk_count
    digests = bytes(view[pos: pos + chunk_count * DIGEST_SIZE])
    pos += chunk_count * DIGEST_SIZE
    split = [digests[i: i + DIGEST_SIZE] for i in range(0, len(digests), DIGEST_SIZE)]
    extents = tuple(zip(flat[0::2], flat[1::2], strict=True))
    chunks = tuple(map(ChunkRef._make, zip(numbers, split, zeros, strict=True)))
    return PartitionIndex(number, extents, chunks), pos


@contextmanager
def _no_gc() -> Iterator[None]:
    """Millions of new tuples trigger the cyclic GC over and over (5x slower); they hold no
    cycles, so collection can wait until they are built."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _u64(values: Iterable[int]) -> bytes:
    packed = array("Q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _read_u64(view: memoryview, pos: int, count: int) -> list[int]:
    packed = array("Q")
    packed.frombytes(view[pos: pos + count * 8])
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()
