"""A read-only, random-access view of one captured partition, assembled from its chunks.

Byte N of the view is byte N of the partition as it was captured: chunks the index lists
are read from the store (each checked against its BLAKE3 by ChunkStore.get), every other
range reads as zeros (capture zeroed unused bytes, and chunks holding no used byte are not
stored at all). Nothing is ever written, so the store may sit on a read-only medium.

libfsntfs / libvshadow read it as a Python file object; the FUSE presenter serves it as a
file. A chunk that fails its check is never returned as data: the read raises
DamagedChunkError (an OSError, which the C bindings pass on as a failed read) and the view
remembers the chunk, so the caller can name the files that use it.
"""

from __future__ import annotations

import errno
import threading
from collections import OrderedDict
from dataclasses import dataclass

from recovery.errors import ImageDamagedError, UsageError
from recovery.model.manifest import ImageManifest, PartitionImage
from recovery.store.index import ChunkRef, ImageIndex
from recovery.store.objects import ChunkStore
from recovery.sys.slice import RandomAccessFile

# Decoded chunks kept in memory: directory walks come back to the same MFT chunks over
# and over; 16 x 4 MiB stays small on a live system with 2 GiB of RAM.
CACHE_CHUNKS = 16
BROWSABLE = ("ntfs", "fat12", "fat16", "fat32")


class DamagedChunkError(OSError):
    """A chunk of the view failed its hash or could not be read from the store."""

    def __init__(self, number: int, start: int, length: int, cause: ImageDamagedError) -> None:
        super().__init__(errno.EIO, cause.title)
        self.number = number
        self.start = start  # partition offset of the chunk
        self.length = length
        self.cause = cause


@dataclass(frozen=True)
class DamagedRange:
    number: int
    start: int
    length: int
    problem: str


class ImageView(RandomAccessFile):
    """The partition `part` of image `name`; `read_at` is safe from several threads."""

    def __init__(self, store: ChunkStore, name: str, manifest: ImageManifest,
                 part: PartitionImage, chunks: tuple[ChunkRef, ...],
                 cache_chunks: int = CACHE_CHUNKS) -> None:
        super().__init__(part.size)
        self.store = store
        self.name = name
        self.part = part
        self.chunk_size = manifest.chunk_size
        self._chunks = {ref.number: ref for ref in chunks}
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_chunks = cache_chunks
        self._lock = threading.Lock()
        self.damaged: dict[int, DamagedRange] = {}
        self.bytes_from_store = 0  # uncompressed bytes of chunks decoded so far

    def describe(self) -> str:
        return f"partition {self.part.number} of image {self.name}"

    # --- random access -------------------------------------------------------------------
    def read_at(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) clipped to the partition's end."""
        length = max(0, min(length, self.size - offset))
        self._check_readable(offset, length)
        pieces = []
        position, end = offset, offset + length
        while position < end:
            number, within = divmod(position, self.chunk_size)
            take = min(self.chunk_size - within, end - position)
            pieces.append(self._chunk_slice(number, within, take))
            position += take
        return b"".join(pieces)

    def _check_readable(self, offset: int, length: int) -> None:
        """A rescue capture stored zeros where the source disk could not be read: those
        bytes are refused like a damaged chunk, never passed on as the file's content."""
        for piece in self.part.unreadable:
            if piece.offset < offset + length and offset < piece.offset + piece.length:
                number = piece.offset // self.chunk_size
                problem = (f"bytes {piece.offset}-{piece.offset + piece.length - 1} of "
                           f"{self.describe()} could not be read from the source disk "
                           "during the rescue capture")
                with self._lock:
                    self.damaged.setdefault(number, DamagedRange(
                        number, piece.offset, piece.length, problem + "."))
                raise DamagedChunkError(number, piece.offset, piece.length,
                                        ImageDamagedError(problem + ".", ""))

    def _chunk_slice(self, number: int, within: int, take: int) -> bytes:
        ref = self._chunks.get(number)
        if ref is None or ref.zero:
            return bytes(take)
        data = self._chunk(ref)
        piece = data[within: within + take]
        # The partition's last chunk is shorter than chunk_size when the size is not a
        # multiple of it; nothing is stored past the end.
        return piece + bytes(take - len(piece))

    def _chunk(self, ref: ChunkRef) -> bytes:
        with self._lock:
            data = self._cache.get(ref.number)
            if data is not None:
                self._cache.move_to_end(ref.number)
                return data
        start = ref.number * self.chunk_size
        try:
            data = self.store.get(ref.digest)
        except ImageDamagedError as exc:
            length = min(self.chunk_size, self.size - start)
            with self._lock:
                self.damaged[ref.number] = DamagedRange(ref.number, start, length, exc.title)
            raise DamagedChunkError(ref.number, start, length, exc) from exc
        with self._lock:
            self.bytes_from_store += len(data)
            self._cache[ref.number] = data
            while len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return data

    def chunk_of(self, offset: int) -> int:
        return offset // self.chunk_size

    def stored_chunk(self, number: int) -> bytes | None:
        """The digest of chunk `number`, or None when it reads as zeros."""
        ref = self._chunks.get(number)
        return None if ref is None or ref.zero else ref.digest


def pick_partition(manifest: ImageManifest, number: int | None, name: str) -> PartitionImage:
    """Partition `number`, or (None) the Windows volume, else the largest browsable one."""
    captured = manifest.captured_partitions
    if number is not None:
        for part in captured:
            if part.number == number:
                return part
        known = ", ".join(f"{p.number} ({p.role}, {p.fs_type})" for p in captured) or "none"
        raise UsageError(f"Image {name} has no captured partition {number}.",
                         f"Captured partitions: {known}; pass one with --partition N.")
    browsable = [p for p in captured if p.fs_type in BROWSABLE]
    for part in browsable:
        if part.role == "system":
            return part
    if not browsable:
        raise UsageError(f"Image {name} holds no NTFS or FAT partition to open.",
                         "Check `recovery images --json` for what was captured.")
    return max(browsable, key=lambda p: p.size)


def open_view(store: ChunkStore, name: str, number: int | None = None,
              loaded: tuple[ImageManifest, ImageIndex] | None = None) -> ImageView:
    """The view of partition `number` (see pick_partition) of the complete image `name`."""
    manifest, index = loaded or store.load_image(name)
    part = pick_partition(manifest, number, name)
    entry = index.partition(part.number)
    chunks = entry.chunks if entry is not None else ()
    return ImageView(store, name, manifest, part, chunks)
