"""Chunks of an image placed where they live on a disk: what restore writes, verify and
the read-back check read, and a resize moves (its own module so those three need only it,
not each other)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from recovery.engine.chunking import ChunkIO, ChunkSpan, chunk_spans, zeros
from recovery.errors import ImageDamagedError
from recovery.model.extents import Extent, clip
from recovery.model.manifest import ImageManifest
from recovery.store.index import ChunkRef, ImageIndex, PartitionIndex


@dataclass(frozen=True)
class PlacedChunk:
    """A chunk with where it lives on the disk: enough to read, write or check it."""

    partition: int
    partition_offset: int
    span: ChunkSpan
    ref: ChunkRef
    # Bytes of this chunk a rescue capture could not read (partition offsets): the image
    # holds zeros there, so a disk's bytes there are not compared.
    unreadable: tuple[Extent, ...] = ()

    def read_from(self, chunk_io: ChunkIO) -> memoryview:
        """The chunk's content as the medium holds it, unreadable ranges zeroed."""
        data = chunk_io.read_masked(self.partition_offset, self.span, uncached=True)
        for start, length in self.unreadable:
            data[start - self.span.start: start - self.span.start + length] = zeros(length)
        return data

    def where(self) -> str:
        offset = self.partition_offset + self.span.start
        return (f"partition {self.partition}, chunk {self.span.number} "
                f"(disk offset {offset}, {self.span.length} bytes)")


def placed_chunks(manifest: ImageManifest, part: PartitionIndex) -> Iterator[PlacedChunk]:
    """Pair each index entry with its span; both are in ascending chunk order."""
    meta = manifest.partition(part.number)
    spans = chunk_spans(meta.size, manifest.chunk_size, list(part.extents))
    unreadable = [(piece.offset, piece.length) for piece in meta.unreadable]
    for ref, span in zip(part.chunks, spans, strict=True):
        if ref.number != span.number:
            raise ImageDamagedError(
                f"Index of image {manifest.name} does not match partition {part.number}'s "
                "used-block map.", "The image is damaged; capture the disk again.")
        holes = tuple(clip(unreadable, span.start, span.start + span.length)) \
            if unreadable else ()
        yield PlacedChunk(part.number, meta.start, span, ref, holes)


def all_placed(manifest: ImageManifest, index: ImageIndex) -> Iterator[PlacedChunk]:
    for part in index.partitions:
        yield from placed_chunks(manifest, part)
