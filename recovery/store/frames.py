"""How a chunk becomes the bytes of its chunk file: one zstd frame, padded to whole blocks.

Every chunk file is a standard zstd frame (RFC 8878) that `zstd -d` reads, so no store
format change was needed for either of the two ways used here to save time:

- Incompressible data (already compressed files, encrypted data, media: much of a real
  Windows volume) is not fed through zstd at all. A sample of the chunk is compressed
  first; when it does not shrink, the chunk is stored as a frame of raw blocks, which costs
  one copy instead of zstd's full match search (measured: 4 MiB of random data, zstd
  level 1 1.7 ms, the copy 0.5 ms), and reading it back is a copy too.
- The file is padded to the direct-I/O alignment with a skippable frame, which every zstd
  decoder passes over, so the file is written whole with O_DIRECT and never cut back
  afterwards (cutting a file back is a journalled metadata change on ext4: it cost more
  than a tenth of the store-write time when measured).
"""

from __future__ import annotations

import struct

import zstandard

_MAGIC = struct.pack("<I", 0xFD2FB528)
# Frame header descriptor: single segment (the window is the content), 8-byte content size.
_DESCRIPTOR = bytes([0xE0])
_RAW_BLOCK = 128 * 1024  # the largest block a frame may hold
_SKIPPABLE_MAGIC = 0x184D2A50
_SKIPPABLE_HEADER = 8

# The sample: pieces spread evenly over the chunk, so a compressible stretch longer than
# the gap between two pieces is always seen (a chunk that holds the end of one file and
# the start of another is compressed normally).
_SAMPLE_PIECES = 16
_SAMPLE_PIECE = 4096
# Stored raw when the sample shrinks by less than this: zstd would win under 2 %.
_WORTH_COMPRESSING = 0.98


def incompressible(data: bytes | memoryview, compressor: zstandard.ZstdCompressor) -> bool:
    """True when a sample of `data` does not shrink under `compressor` (short data never)."""
    if len(data) < 4 * _SAMPLE_PIECES * _SAMPLE_PIECE:
        return False
    step = len(data) // _SAMPLE_PIECES
    view = memoryview(data)
    sample = b"".join(view[i * step: i * step + _SAMPLE_PIECE] for i in range(_SAMPLE_PIECES))
    return len(compressor.compress(sample)) >= len(sample) * _WORTH_COMPRESSING


class Frame:
    """A chunk file's bytes as pieces, the data's own among them (not copied): the pieces
    go to the file in one write (writev), which saved a chunk-sized copy per stored chunk.
    The pieces may be views of a thread's read buffer: write them before the next read."""

    def __init__(self, pieces: list[bytes | memoryview]) -> None:
        self.pieces = pieces
        self._size = sum(len(piece) for piece in pieces)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)


def raw_frame(data: bytes | memoryview) -> Frame:
    """A zstd frame holding `data` uncompressed, with its content size (as zstd writes it)."""
    view = memoryview(data)
    pieces: list[bytes | memoryview] = [_MAGIC, _DESCRIPTOR, struct.pack("<Q", len(view))]
    offset = 0
    while True:
        size = min(_RAW_BLOCK, len(view) - offset)
        last = offset + size == len(view)
        pieces += [(size << 3 | int(last)).to_bytes(3, "little"), view[offset: offset + size]]
        offset += size
        if last:
            return Frame(pieces)


def padding(length: int, align: int) -> bytes:
    """A skippable frame that brings a file of `length` bytes to a multiple of `align`."""
    missing = -length % align
    if missing and missing < _SKIPPABLE_HEADER:
        missing += align
    if not missing:
        return b""
    return struct.pack("<II", _SKIPPABLE_MAGIC, missing - _SKIPPABLE_HEADER) + \
        bytes(missing - _SKIPPABLE_HEADER)
