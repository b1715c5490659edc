"""The image store: a directory of content-addressed, zstd-compressed chunks and images.

    STORE/recovery-store.yaml        marker: format 1, created
    STORE/chunks/ab/<64 hex>         one zstd frame (level 1) per chunk, named by the BLAKE3
                                     of its uncompressed content
    STORE/images/NAME/               manifest.yaml + index.bin of a complete image
    STORE/images/NAME.partial/       a capture in progress or interrupted (resumable)

A chunk is stored once per store whatever number of images use it; all-zero chunks are
never stored (the index flags them). Methods are safe to call from worker threads.
"""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import blake3
import yaml
import zstandard

from recovery.errors import (
    Hint,
    ImageDamagedError,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
)
from recovery.model.manifest import ImageManifest, RawArea, SourceIdentity, utc_timestamp
from recovery.store import files, frames, images, locks, prune, verified
from recovery.store.images import default_image_name
from recovery.store.index import ImageIndex
from recovery.sys.directio import ALIGN, read_file_direct
from recovery.units import MiB

MARKER = "recovery-store.yaml"
STORE_FORMAT = 1
ZSTD_LEVEL = 1
# Room kept for index.bin, manifest.yaml and file-system metadata when checking space.
METADATA_RESERVE = 16 * MiB
_LOCK_STRIPES = 256
_SYNC_THREADS = 32
# Chunk files written before they are fsynced together and named. One fsync per file cost
# about 40 % of the store-write time here (each is a journal commit, and on a shared or USB
# drive a cache flush); fsynced together they share a commit. A batch is fsynced and named
# by a thread of its own while the workers go on reading and writing: one batch at a time,
# and the next one takes every file written meanwhile. A worker waits for it only when
# _PUBLISH_BACKLOG files are waiting: waiting at every full batch kept 16-24 of a capture's
# 45 worker-seconds off reading (docs/benchmarks.md, "Issue 9, sixth pass"). A crash loses
# at most the unnamed temp files (prune removes them), never a named chunk that is
# incomplete.
_PUBLISH_BATCH = 32
_PUBLISH_BACKLOG = 4 * _PUBLISH_BATCH

__all__ = ["ChunkStore", "default_image_name"]


class ChunkStore:
    """An open store. `ChunkStore.open(path)`; nothing to close."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.chunks_dir = root / "chunks"
        self.images_dir = root / "images"
        self._local = threading.local()
        self._stripes = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._dirty_lock = threading.Lock()
        self._dirty_dirs: set[Path] = set()
        self._known_dirs: set[Path] = set()
        # Written chunk files not yet fsynced and named, by digest: (temp file, final name).
        self._unnamed: dict[bytes, tuple[Path, Path]] = {}
        self._naming: dict[bytes, tuple[Path, Path]] = {}  # being fsynced and named
        self._publishing: Future[None] | None = None  # the batch being fsynced and named
        self._publish_lock = threading.Lock()
        self._lock: locks.StoreLock | None = None
        # Chunk files on a share go through the page cache (recovery.store.files).
        self._direct = not files.network_file_system(root)

    def __repr__(self) -> str:
        return f"ChunkStore({str(self.root)!r})"

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, create: bool = False) -> ChunkStore:
        path = Path(path)
        try:
            if create:
                _create(path)
            elif not path.is_dir():
                what = "is not a directory" if path.exists() else "does not exist"
                raise StoreError(f"The store path {path} {what}.",
                                 "Mount the store drive and give the folder that holds "
                                 f"{MARKER}.", hint=Hint.NEW_STORE)
            _check_marker(path)
        except OSError as error:
            raise _unreachable(path, error) from error
        return cls(path)

    # --- chunks --------------------------------------------------------------------------
    def chunk_path(self, digest: bytes) -> Path:
        name = digest.hex()
        return self.chunks_dir / name[:2] / name

    def has(self, digest: bytes) -> bool:
        with self._dirty_lock:
            if digest in self._unnamed or digest in self._naming:
                return True
        return self.chunk_path(digest).is_file()

    def compress(self, data: bytes | memoryview) -> bytes | frames.Frame:
        """The chunk file's zstd frame: compressed, or raw blocks when a sample says
        compressing would not pay (recovery.store.frames)."""
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
            self._local.compressor = compressor
        if frames.incompressible(data, compressor):
            return frames.raw_frame(data)
        compressed: bytes = compressor.compress(data)
        return compressed

    def put(self, digest: bytes, compressed: bytes | frames.Frame,
            batched: bool = False) -> bool:
        """Store a compressed chunk under its digest; True when it was not there before.

        `batched` (capture's bulk path): the file gets its name once it is durable, with
        the next batch of chunk files (`_PUBLISH_BATCH`) or at `sync`, which the caller
        must reach, also when it fails; `has` and `get` count it meanwhile.
        """
        final = self.chunk_path(digest)
        pad = frames.padding(len(compressed), ALIGN)
        with self._stripes[digest[0] % _LOCK_STRIPES]:
            if self.has(digest):
                return False
            self._ensure_dir(final.parent)
            # A batched chunk file goes through the page cache: its batch's fsync writes it
            # back. O_DIRECT into a new file made ext4 allocate and convert its blocks under
            # the writing worker (53-59 % of a capture's worker time); through the cache the
            # write returns at once and the allocation is done once per file at writeback
            # (capture 3.5-4.4 s instead of 4.0-5.8 s, docs/benchmarks.md, "Issue 9, fifth
            # pass"). Durability is the same: named only after its fsync.
            pieces = compressed.pieces if isinstance(compressed, frames.Frame) \
                else [compressed]
            temp = files.write_temp(final, self.root, *pieces, pad, sync=not batched,
                                     direct=self._direct and not batched)
            if not batched:
                files.publish(temp, final, self.root)
            with self._dirty_lock:
                if not batched:
                    self._dirty_dirs.add(final.parent)
                    return True
                self._unnamed[digest] = (temp, final)
                full = len(self._unnamed) >= _PUBLISH_BATCH
        if full:
            self._publish_in_background()
        return True

    def _publish_in_background(self) -> None:
        """Start fsyncing and naming the chunk files written so far in a thread of their
        own once the batch before is done; wait for that one only when the backlog is full.
        The batch before's error, if any, is raised here."""
        with self._publish_lock:
            running = self._publishing
            if running is not None and not running.done():
                with self._dirty_lock:
                    backlog = len(self._unnamed)
                if backlog < _PUBLISH_BACKLOG:
                    return  # a later put starts the next batch
            self._wait_published()
            publishing: Future[None] = Future()
            thread = threading.Thread(target=_settle, args=(publishing, self._publish),
                                      name="store-publish", daemon=True)
            self._publishing = publishing
            thread.start()

    def _wait_published(self) -> None:
        """Wait for the batch being published (caller holds `_publish_lock`)."""
        publishing, self._publishing = self._publishing, None
        if publishing is not None:
            publishing.result()

    def _publish(self) -> None:
        """fsync the written chunk files together, then name them."""
        with self._dirty_lock:
            unnamed, self._unnamed = self._unnamed, {}
            self._naming.update(unnamed)
        try:
            _in_parallel(files.fsync_file, [temp for temp, _ in unnamed.values()])
            for temp, final in unnamed.values():
                os.rename(temp, final)
        except OSError as exc:
            for temp, _ in unnamed.values():
                files.discard_temp(temp)
            raise files.write_error(next(iter(unnamed.values()))[1], self.root, exc) from exc
        finally:
            with self._dirty_lock:
                for digest in unnamed:
                    del self._naming[digest]
                self._dirty_dirs.update(final.parent for _, final in unnamed.values())

    def read_compressed(self, digest: bytes) -> bytes:
        return bytes(self._read_compressed(digest, direct=False))

    def _read_compressed(self, digest: bytes, direct: bool) -> bytes | memoryview:
        """The chunk file; with `direct`, past the page cache into this thread's buffer."""
        path = self.chunk_path(digest)
        try:
            try:
                return _read_file(self._unnamed_file(digest) or path, direct)
            except FileNotFoundError:  # named meanwhile
                return _read_file(path, direct)
        except FileNotFoundError as exc:
            raise ImageDamagedError(
                f"Chunk {digest.hex()} is missing from the store {self.root}.",
                "The store is damaged: verify its images to see which are affected, and "
                "capture the disk again.", hint=Hint.VERIFY_IMAGE) from exc
        except OSError as exc:
            raise ImageDamagedError(
                f"Chunk {digest.hex()} in the store {self.root} cannot be read: "
                f"{exc.strerror}.",
                "The store drive may be failing or unplugged; check it and retry.") from exc

    def _unnamed_file(self, digest: bytes) -> Path | None:
        """The temp file of a chunk written by this process and not named yet."""
        with self._dirty_lock:
            found = self._unnamed.get(digest) or self._naming.get(digest)
        return found[0] if found else None

    def get(self, digest: bytes) -> bytes:
        """The uncompressed chunk, checked against its BLAKE3."""
        compressed = self.read_compressed(digest)
        try:
            data: bytes = self._decompressor().decompress(compressed)
        except zstandard.ZstdError as exc:
            raise self._corrupt(digest, f"it does not decompress ({exc})") from exc
        if blake3.blake3(data).digest() != digest:
            raise self._corrupt(digest, "its content does not match its hash")
        return data

    def get_into(self, digest: bytes, out: memoryview) -> None:
        """Decompress the chunk into `out`, which must be exactly its size; checked against
        its BLAKE3. Saves a chunk-sized allocation per call on the restore path."""
        compressed = self._read_compressed(digest, direct=True)
        try:
            size = zstandard.frame_content_size(compressed)
            done = 0
            if size == len(out):
                reader = self._decompressor().stream_reader(compressed)
                while done < len(out) and (got := reader.readinto(out[done:])):
                    done += got
        except zstandard.ZstdError as exc:
            raise self._corrupt(digest, f"it does not decompress ({exc})") from exc
        if done != len(out):
            raise self._corrupt(digest, f"it should hold {len(out)} bytes")
        if blake3.blake3(out, max_threads=1).digest() != digest:
            raise self._corrupt(digest, "its content does not match its hash")

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = self._local.decompressor = zstandard.ZstdDecompressor()
        return decompressor

    def read_area(self, area: RawArea) -> bytes:
        """A boot area's bytes, checked against its digest and its size."""
        data = self.get(bytes.fromhex(area.digest))
        if len(data) != area.size:
            raise self._corrupt(bytes.fromhex(area.digest),
                                f"boot area {area.name} should be {area.size} bytes, the "
                                f"chunk has {len(data)}")
        return data

    def _corrupt(self, digest: bytes, why: str) -> ImageDamagedError:
        return ImageDamagedError(
            f"Chunk {digest.hex()} in the store {self.root} is corrupt: {why}.",
            "Delete that chunk file and capture the disk again to replace it; verify the "
            "store's images to see which are affected.", hint=Hint.VERIFY_IMAGE)

    # --- space and durability ------------------------------------------------------------
    def free_bytes(self) -> int:
        return files.free_bytes(self.root)

    def ensure_space(self, needed: int) -> None:
        """StoreFullError before writing when `needed` bytes (plus metadata) do not fit."""
        if self.free_bytes() < needed + METADATA_RESERVE:
            raise files.full_error(self.root, needed)

    def sync(self) -> None:
        """Name every chunk file written, then fsync every chunk directory written to since
        the last sync.

        In parallel: the file system commits concurrent fsyncs together (one by one, a
        fresh store's 257 directories took 0.4 s here, together 0.05 s).
        """
        with self._publish_lock:
            self._wait_published()
        self._publish()
        with self._dirty_lock:
            dirty, self._dirty_dirs = self._dirty_dirs, set()
        _in_parallel(files.fsync_dir, sorted(dirty))

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            raise files.write_error(directory, self.root, exc) from exc
        self._known_dirs.add(directory)
        with self._dirty_lock:
            self._dirty_dirs.add(directory.parent)

    # --- images --------------------------------------------------------------------------
    def begin_image(self, name: str, source: SourceIdentity | None = None
                    ) -> images.ImageWriter:
        """Start (or resume) capturing image `name`; `source` lets a repeated capture of the
        same disk find this one again (`resumable_image`)."""
        return images.begin(self, name, source.stable_id if source else "")

    def begin_capture(self, requested: str | None, source: SourceIdentity,
                      new_name: Callable[[Collection[str]], str]) -> images.ImageWriter:
        """Start the capture of `source` under this job's lock: as `requested`, else by
        resuming its interrupted capture that no running job is writing, else under
        `new_name(names taken)`. The name is claimed in the lock before anything is
        written, so two jobs capturing the same PC at once never share a folder."""
        for _attempt in range(50):
            busy = self.images_being_captured()
            if requested and requested in busy:
                raise StoreLockedError(
                    f"Image {requested} in {self.root} is being captured right now by "
                    f"{busy[requested].describe()}.",
                    "Choose another name, or wait until that capture has finished.",
                    hint=Hint.IMAGE_NAME)
            name = (requested or images.resumable(self.images_dir, source.stable_id, busy)
                    or new_name({*busy, *(i.name for i in self.list_images())}))
            if self._lock is None:
                return self.begin_image(name, source)
            self._lock.claim(name)
            if name not in self.images_being_captured():
                return self.begin_image(name, source)
            self._lock.claim("")  # another job claimed it at the same moment: back off
            time.sleep(random.uniform(0.05, 0.3))
        raise StoreLockedError(f"No free image name could be claimed in {self.root}.",
                               "Give the image a name and run the capture again.",
                               hint=Hint.IMAGE_NAME)

    def resumable_image(self, source: SourceIdentity) -> str | None:
        """Name of the newest interrupted capture of `source` no running job writes, or
        None."""
        return images.resumable(self.images_dir, source.stable_id,
                                self.images_being_captured())

    # --- locks (recovery.store.locks) ----------------------------------------------------
    @contextmanager
    def locked(self, job: str, *, exclusive: bool = False, image: str = "",
               wait_seconds: float = 10.0, read_only_ok: bool = False
               ) -> Iterator[locks.StoreLock | None]:
        """Hold a shared (capture, restore, verify) or exclusive (delete, prune) lock.

        `read_only_ok`: a job that only reads runs unlocked on a store it cannot write
        (a read-only share or drive), as it could not be pruned through that mount either.
        """
        try:
            lock = locks.acquire(self.root, job, exclusive=exclusive, image=image,
                                 wait_seconds=wait_seconds)
        except StoreReadOnlyError:
            if not read_only_ok:
                raise
            yield None
            return
        self._lock = lock
        try:
            yield lock
        finally:
            self._lock = None
            lock.release()

    def check_lock(self) -> None:
        """StoreError when this job's lock was lost (another job took it for stale)."""
        if self._lock is not None:
            self._lock.check()

    def images_being_captured(self) -> dict[str, locks.LockInfo]:
        """Images other running jobs are capturing, by name."""
        own = self._lock.info if self._lock else None
        return {info.image: info for info in locks.live_locks(self.root, own)
                if info.job == "capture" and info.image}

    def list_images(self) -> list[images.ImageInfo]:
        return images.list_all(self.images_dir)

    def load_image(self, name: str) -> tuple[ImageManifest, ImageIndex]:
        return images.load(self.images_dir, name)

    def record_verification(self, name: str, verification: verified.Verification) -> None:
        """Keep the outcome of a full check of image `name` (see recovery.store.verified)."""
        images.check_name(name)
        verified.record(self.images_dir / name, verification, self.root)

    def remove_image(self, name: str, wait_seconds: float = 10.0) -> None:
        with self.locked("delete", exclusive=True, image=name, wait_seconds=wait_seconds):
            prune.remove_image(self, name)

    def collect_garbage(self, wait_seconds: float = 10.0) -> prune.PruneReport:
        with self.locked("prune", exclusive=True, wait_seconds=wait_seconds):
            return prune.collect(self)


def _read_file(path: Path, direct: bool) -> bytes | memoryview:
    """The file's bytes; with `direct`, past the page cache into this thread's buffer."""
    return (direct and read_file_direct(path)) or path.read_bytes()


def _settle(future: Future[None], work: Callable[[], None]) -> None:
    try:
        work()
    except BaseException as exc:  # handed to whoever waits for the batch
        future.set_exception(exc)
    else:
        future.set_result(None)


def _in_parallel(work: Callable[[Path], None], paths: list[Path]) -> None:
    if paths:
        with ThreadPoolExecutor(min(_SYNC_THREADS, len(paths)),
                                thread_name_prefix="store-sync") as pool:
            list(pool.map(work, paths))


def _unreachable(path: Path, error: OSError) -> StoreError:
    """The drive under `path` stopped answering: unplugged while mounted, or failing."""
    return StoreError(
        f"The store drive at {path} does not answer ({error.strerror}); it was probably "
        "unplugged while mounted, or it is failing.",
        f"Unmount it ('umount -l {path}'), plug the drive in again and mount it, then "
        "try again.")


def _create(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("chunks", "images"):
            (path / sub).mkdir(exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOTCONN, errno.EIO):
            raise _unreachable(path, exc) from exc
        raise StoreError(f"Cannot create a store in {path}: {exc.strerror}.",
                         "Check that the drive is mounted read-write and the path is a "
                         "folder.") from exc
    marker = path / MARKER
    if not marker.exists():
        text = yaml.safe_dump({"format": STORE_FORMAT, "created": utc_timestamp()},
                              sort_keys=False)
        files.write_atomic(marker, text.encode(), path)
        files.fsync_dir(path)


def _check_marker(path: Path) -> None:
    marker = path / MARKER
    try:
        document = yaml.safe_load(marker.read_text())
    except FileNotFoundError as exc:
        raise StoreError(
            f"{path} has no {MARKER}: it is not an image store. Is this the right drive?",
            "Give the folder that holds recovery-store.yaml.", hint=Hint.NEW_STORE) from exc
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StoreError(f"The store marker {marker} cannot be read ({exc}).",
                         "Check the store drive; if the file was damaged, write a new one "
                         f"containing 'format: {STORE_FORMAT}'.") from exc
    fmt = document.get("format") if isinstance(document, dict) else None
    if fmt != STORE_FORMAT:
        raise StoreError(f"The store {path} has format {fmt!r}; this version of recovery "
                         f"reads format {STORE_FORMAT}.",
                         "Use the recovery version that created the store.")
