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

import contextlib
import errno
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from recovery.errors import Hint, ImageDamagedError, UsageError
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
        self._loading: dict[int, threading.Event] = {}  # chunks being decoded right now
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

    def _chunk(self, ref: ChunkRef, record: bool = True) -> bytes:
        """The decoded chunk, from the cache, or decoded here; a chunk another thread is
        decoding (read-ahead) is waited for instead of decoded twice."""
        while True:
            with self._lock:
                data = self._cache.get(ref.number)
                if data is not None:
                    self._cache.move_to_end(ref.number)
                    return data
                waiting = self._loading.get(ref.number)
                if waiting is None:
                    mine = self._loading[ref.number] = threading.Event()
                    break
            waiting.wait()  # then the cache has it, or that decode failed: try here
        try:
            return self._decode(ref, record)
        finally:
            with self._lock:
                del self._loading[ref.number]
            mine.set()

    def _decode(self, ref: ChunkRef, record: bool) -> bytes:
        start = ref.number * self.chunk_size
        try:
            data = self.store.get(ref.digest)
        except ImageDamagedError as exc:
            length = min(self.chunk_size, self.size - start)
            if record:
                with self._lock:
                    self.damaged[ref.number] = DamagedRange(ref.number, start, length,
                                                            exc.title)
            raise DamagedChunkError(ref.number, start, length, exc) from exc
        with self._lock:
            self.bytes_from_store += len(data)
            self._cache[ref.number] = data
            while len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return data

    def preload(self, number: int) -> None:
        """Decode chunk `number` into the cache ahead of its read. A damaged chunk is left
        for the read itself to report, with the file that needs it."""
        ref = self._chunks.get(number)
        if ref is None or ref.zero:
            return
        with contextlib.suppress(DamagedChunkError):
            self._chunk(ref, record=False)

    def chunk_of(self, offset: int) -> int:
        return offset // self.chunk_size

    def stored_chunk(self, number: int) -> bytes | None:
        """The digest of chunk `number`, or None when it reads as zeros."""
        ref = self._chunks.get(number)
        return None if ref is None or ref.zero else ref.digest


class ReadAhead:
    """Decodes the chunks a job will read next on background threads, while the job's
    own thread goes through the file system and writes: reading a chunk file, zstd and
    BLAKE3 release the GIL, so on two cores they overlap the copy instead of adding to it.
    The job says what comes next (`expect`) and keeps that a few chunks ahead; the view's
    cache must hold the chunks expected and not yet read."""

    def __init__(self, view: ImageView, threads: int = 2) -> None:
        self.view = view
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, daemon=True,
                                          name=f"read-ahead-{n}") for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def expect(self, numbers: Iterable[int]) -> None:
        for number in numbers:
            self._queue.put(number)

    def _work(self) -> None:
        while (number := self._queue.get()) is not None:
            self.view.preload(number)

    def close(self) -> None:
        """Waits for what was expected (a few chunks at most) and ends the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


def pick_partition(manifest: ImageManifest, number: int | None, name: str) -> PartitionImage:
    """Partition `number`, or (None) the Windows volume, else the largest browsable one."""
    captured = manifest.captured_partitions
    if number is not None:
        for part in captured:
            if part.number == number:
                return part
        known = ", ".join(f"{p.number} ({p.role}, {p.fs_type})" for p in captured) or "none"
        raise UsageError(f"Image {name} has no captured partition {number}.",
                         f"Captured partitions: {known}; choose one of them.",
                         hint=Hint.CHOOSE_PARTITION)
    browsable = [p for p in captured if p.fs_type in BROWSABLE]
    for part in browsable:
        if part.role == "system":
            return part
    if not browsable:
        raise UsageError(f"Image {name} holds no NTFS or FAT partition to open.",
                         "Check what was captured.", hint=Hint.LIST_IMAGES)
    return max(browsable, key=lambda p: p.size)


def open_view(store: ChunkStore, name: str, number: int | None = None,
              loaded: tuple[ImageManifest, ImageIndex] | None = None) -> ImageView:
    """The view of partition `number` (see pick_partition) of the complete image `name`."""
    manifest, index = loaded or store.load_image(name)
    part = pick_partition(manifest, number, name)
    entry = index.partition(part.number)
    chunks = entry.chunks if entry is not None else ()
    return ImageView(store, name, manifest, part, chunks)
