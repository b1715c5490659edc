"""Cutting a partition into fixed-size chunks aligned to its start, used blocks only.

A chunk's content is the partition's bytes in [start, start + length) with every byte that
the file system does not use replaced by zeros, so that its BLAKE3 names exactly the data a
restore must bring back and free-space garbage never makes two captures differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import blake3

from recovery.model.extents import Extent
from recovery.sys.blockdev import BlockDevice
from recovery.sys.directio import ALIGN, DirectDevice, thread_buffer
from recovery.units import align_down, align_up


@dataclass(frozen=True)
class ChunkSpan:
    """One chunk of a partition: offsets relative to the partition start."""

    number: int
    start: int
    length: int
    used: tuple[Extent, ...] = field(default_factory=tuple)

    @property
    def used_bytes(self) -> int:
        return sum(length for _, length in self.used)

    @property
    def fully_used(self) -> bool:
        return self.used == ((self.start, self.length),)


def chunk_spans(partition_size: int, chunk_size: int, used: list[Extent]) -> Iterator[ChunkSpan]:
    """Chunks that hold at least one used byte, in order, with their used extents.

    One pass over the sorted extents, so a fragmented 2 TB volume (millions of extents)
    costs no more than reading the list.
    """
    current: int | None = None
    pieces: list[Extent] = []
    for start, length in used:
        end = min(start + length, partition_size)
        while start < end:
            number = start // chunk_size
            piece_end = min(end, (number + 1) * chunk_size)
            if number != current:
                if current is not None:
                    yield _span(current, chunk_size, partition_size, pieces)
                current, pieces = number, []
            pieces.append((start, piece_end - start))
            start = piece_end
    if current is not None:
        yield _span(current, chunk_size, partition_size, pieces)


def _span(number: int, chunk_size: int, partition_size: int, pieces: list[Extent]) -> ChunkSpan:
    start = number * chunk_size
    return ChunkSpan(number, start, min(chunk_size, partition_size - start), tuple(pieces))


class ChunkIO:
    """Whole chunks of one open device, read and written through this thread's buffer.

    Aligned ranges go straight between the medium and the buffer (O_DIRECT); the rest
    through the BlockDevice. A returned view belongs to the calling thread and is valid
    until that thread's next call: hash, compress or write it before returning.
    """

    def __init__(self, device: BlockDevice) -> None:
        self.device = device
        self.direct = DirectDevice(device)

    def __enter__(self) -> ChunkIO:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.direct.close()

    def frame(self, partition_offset: int, span: ChunkSpan) -> memoryview:
        """This thread's buffer laid out for `span`: byte i is the chunk's byte i, and the
        device offsets that are multiples of ALIGN fall on aligned memory."""
        base = partition_offset + span.start
        pad = base - align_down(base, ALIGN)
        return _buffer(span)[pad: pad + span.length]

    def read_masked(self, partition_offset: int, span: ChunkSpan,
                    uncached: bool = False) -> memoryview:
        """The chunk's content: used bytes as on the medium, unused bytes zero.

        One read from the first to the last used byte (rounded out to the alignment), then
        the holes zeroed: at most one chunk of extra reading, far fewer system calls than
        one read per extent on a fragmented volume. `uncached` matters only when direct
        I/O is refused: the fallback then drops cached pages before reading.
        """
        base = partition_offset + span.start
        content = self.frame(partition_offset, span)
        first = partition_offset + span.used[0][0]
        last = partition_offset + span.used[-1][0] + span.used[-1][1]
        start = align_down(first, ALIGN)
        end = min(align_up(last, ALIGN), self.device.size)
        window = _buffer(span)[start - align_down(base, ALIGN):][:end - start]
        if not self.direct.read_into(start, window):
            read = self.device.read_uncached if uncached else self.device.read_at
            content[first - base: last - base] = read(first, last - first)
        _zero_unused(content, span)
        return content

    def write_used(self, partition_offset: int, span: ChunkSpan, content: memoryview) -> int:
        """Write only the used extents of `content` (a frame() view); unused ranges on the
        target stay as they are. Returns the bytes written."""
        for start, length in span.used:
            offset = partition_offset + start
            piece = content[start - span.start: start - span.start + length]
            if not self.direct.write_from(offset, piece):
                self.device.write_at(offset, piece)
        return span.used_bytes


def _buffer(span: ChunkSpan) -> memoryview:
    return thread_buffer(span.length + 2 * ALIGN)


def _zero_unused(content: memoryview, span: ChunkSpan) -> None:
    position = span.start
    for start, length in (*span.used, (span.start + span.length, 0)):
        if start > position:
            content[position - span.start: start - span.start] = zeros(start - position)
        position = start + length


def zeros(length: int) -> memoryview:
    """`length` zero bytes without allocating them each time."""
    global _ZEROS
    if len(_ZEROS) < length:
        _ZEROS = memoryview(bytes(length))
    return _ZEROS[:length]


_ZEROS = memoryview(bytes(0))


def digest(data: bytes | memoryview) -> bytes:
    hasher = blake3.blake3(max_threads=1)
    hasher.update(data)
    result: bytes = hasher.digest()
    return result


@lru_cache(maxsize=8)
def zero_digest(length: int) -> bytes:
    return digest(bytes(length))
