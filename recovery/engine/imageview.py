"""A FUSE view of one partition being resized: the target below the new end, the image above.

Shrinking a restored NTFS volume means moving the data that lies past the new end. No
staging copy is made and nothing is written to the store (it may be read-only): the
target's partition holds the image's used clusters below the new end; this view serves the
whole old-size volume as one file whose bytes below `split` are the target's and whose
bytes above are read from the image's chunks. ntfsresize runs on the file and relocates
everything past the new end, reading it from the image and writing it below `split`, that
is into the target. Writes above `split` (ntfsresize updating metadata it will move anyway)
are kept in memory: they must never reach the disk, where the next partition now lies.
Growing uses the same view with the new size as both `split` and length (every byte is the
target's), only so that ntfsresize's writes are read back as a shrink's are.

The view runs as its own process (python3 -m recovery.engine.imageview SPEC MOUNTPOINT),
so serving I/O never competes for the GIL or a thread pool with the engine that waits.

Speed: ntfsresize moves one cluster (4 KiB) per read and per write. Served one by one, each
is a FUSE round trip through Python (a shrink took 2.5x a same-size restore). The kernel's
page cache therefore sits in front of the view: reads come as readahead (128 KiB), writes
are gathered by FUSE's write-back cache (libfuse3) into requests of up to 1 MiB, flushed
when ntfsresize syncs the volume. Safety is unchanged: every block the view writes into the
target is remembered with the BLAKE3 of what it now holds, and once ntfsresize is done and
the view is gone, every one is read back from the medium, past the page cache.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import blake3

from recovery.errors import ToolError, VerificationError
from recovery.sys.blockdev import BlockDevice
from recovery.sys.run import run
from recovery.units import MiB

VOLUME = "volume"
_OVERLAY_BLOCK = 4096  # also the unit in which writes into the target are read back
_DIGEST_BYTES = 16
_RECORD = 8 + _DIGEST_BYTES  # block number (little endian) + digest, in the written-log
_READ_BACK_RUN = 4 * MiB
# libfuse3's FUSE_CAP_WRITEBACK_CACHE: the kernel gathers writes into large requests.
_WRITEBACK_CACHE = 1 << 16


@dataclass(frozen=True)
class ViewSpec:
    store: str
    image: str
    partition: int  # partition number in the image
    target: str  # whole target disk (block device or image file); "" with split 0
    target_offset: int  # where the partition starts on the target
    split: int  # bytes from the partition start: below from the target, above from the image
    size: int  # the view's length: the image's size of the partition, or more when grown
    written_log: str = ""  # where the view lists, on exit, the blocks it wrote below split


class PartitionView:
    """mfusepy Operations serving VOLUME per ViewSpec."""

    use_ns = True

    def __init__(self, spec: ViewSpec) -> None:
        from recovery.store.imageview import open_view
        from recovery.store.objects import ChunkStore

        self.spec = spec
        self.image = open_view(ChunkStore.open(Path(spec.store)), spec.image, spec.partition)
        # No target: a read-only view of the image alone (ntfsresize --info while planning).
        self.fd = os.open(spec.target, os.O_RDWR | os.O_CLOEXEC) if spec.target else -1
        self.guard = threading.Lock()
        self.overlay: dict[int, bytearray] = {}  # block number -> 4 KiB written above split
        self.written: dict[int, bytes] = {}  # block below split -> digest of what it holds

    def init_with_config(self, conn: Any, config: Any) -> None:
        conn.want |= _WRITEBACK_CACHE & conn.capable

    def utimens(self, path: str, times: Any = None) -> int:
        return 0  # the write-back cache hands the kernel's file times over; nothing keeps them

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        now = time.time_ns()
        base = {"st_uid": 0, "st_gid": 0, "st_atime": now, "st_mtime": now, "st_ctime": now}
        if path == "/":
            return {**base, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == f"/{VOLUME}":
            return {**base, "st_mode": stat.S_IFREG | 0o600, "st_nlink": 1,
                    "st_size": self.spec.size}
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", VOLUME]

    def open(self, path: str, flags: int) -> int:
        return 0

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))  # a partition keeps its size

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        end = min(offset + size, self.spec.size)
        if offset >= end:
            return b""
        below = min(end, self.spec.split)
        head = os.pread(self.fd, below - offset, self.spec.target_offset + offset) \
            if offset < below else b""
        if end <= self.spec.split:
            return head
        return head + self._image_bytes(max(offset, self.spec.split), end)

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        if offset + len(data) > self.spec.size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        below = max(0, min(len(data), self.spec.split - offset))
        if below:
            os.pwrite(self.fd, data[:below], self.spec.target_offset + offset)
            self._remember(offset, data[:below])
        position = offset + below
        while position < offset + len(data):
            block = position // _OVERLAY_BLOCK
            stop = min(offset + len(data), (block + 1) * _OVERLAY_BLOCK)
            with self.guard:
                buffer = self.overlay.get(block)
                if buffer is None:
                    start = block * _OVERLAY_BLOCK
                    # No overlay for this block yet: the image holds its bytes.
                    buffer = bytearray(self.image.read_at(start, _OVERLAY_BLOCK))
                    self.overlay[block] = buffer
                inner = position - block * _OVERLAY_BLOCK
                buffer[inner: inner + stop - position] = data[position - offset: stop - offset]
            position = stop
        return len(data)

    def _remember(self, offset: int, data: bytes) -> None:
        """Note the digest of each block [offset, offset + len(data)) touched now holds;
        a block written only in part is hashed as the target now holds it."""
        first, last = offset // _OVERLAY_BLOCK, (offset + len(data) - 1) // _OVERLAY_BLOCK
        for block in range(first, last + 1):
            start = block * _OVERLAY_BLOCK
            stop = min(start + _OVERLAY_BLOCK, self.spec.split)
            if start >= offset and stop <= offset + len(data):
                content = data[start - offset: stop - offset]
            else:
                content = os.pread(self.fd, stop - start, self.spec.target_offset + start)
            self.written[block] = _block_digest(content)

    def fsync(self, path: str, datasync: int, fh: Any) -> int:
        if self.fd >= 0:
            os.fsync(self.fd)
        return 0

    def flush(self, path: str, fh: Any) -> int:
        return 0

    def destroy(self, path: str) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)
        if self.spec.written_log:
            with open(self.spec.written_log, "wb") as log:
                log.write(b"".join(block.to_bytes(8, "little") + digest
                                   for block, digest in sorted(self.written.items())))

    def _image_bytes(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the image's partition, with what was written above split."""
        data = self.image.read_at(start, stop - start)
        with self.guard:
            if not self.overlay:
                return data
            patched = bytearray(data)
            for block in range(start // _OVERLAY_BLOCK, (stop - 1) // _OVERLAY_BLOCK + 1):
                written = self.overlay.get(block)
                if written is None:
                    continue
                lo, hi = max(start, block * _OVERLAY_BLOCK), min(stop,
                                                                 (block + 1) * _OVERLAY_BLOCK)
                patched[lo - start: hi - start] = \
                    written[lo - block * _OVERLAY_BLOCK: hi - block * _OVERLAY_BLOCK]
        return bytes(patched)


def _block_digest(content: bytes | memoryview) -> bytes:
    digest: bytes = blake3.blake3(content).digest(_DIGEST_BYTES)
    return digest


@contextmanager
def partition_view(spec: ViewSpec) -> Iterator[Path]:
    """Serve the view until the block ends; yields the path of the volume file. With a
    target, every block the view wrote into it is then read back (VerificationError)."""
    mountpoint = Path(tempfile.mkdtemp(prefix="recovery-view-"))
    if spec.target:
        spec = ViewSpec(**{**asdict(spec), "written_log": str(mountpoint) + ".written"})
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "recovery.engine.imageview", json.dumps(asdict(spec)),
             str(mountpoint)], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_mounted(mountpoint, process, log)
            yield mountpoint / VOLUME
            _unmount(mountpoint, process)
            if spec.target:
                _check_exit(process, log)
                read_back_written(spec)
        finally:
            _unmount(mountpoint, process)
            mountpoint.rmdir()
            if spec.written_log:
                Path(spec.written_log).unlink(missing_ok=True)


def _unmount(mountpoint: Path, process: subprocess.Popen[bytes]) -> None:
    if os.path.ismount(mountpoint):
        run(["fusermount3", "-u", str(mountpoint)], check=False)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _check_exit(process: subprocess.Popen[bytes], log: Any) -> None:
    if process.returncode != 0:
        log.seek(0)
        raise ToolError("The FUSE view used to shrink the Windows volume failed.",
                        "Restore again; its output: "
                        + log.read().decode(errors="replace")[-600:])


def read_back_written(spec: ViewSpec) -> None:
    """Read every block the view wrote from the medium (past the page cache) and compare it
    with the digest of what was written; the view process has synced and exited."""
    records = Path(spec.written_log).read_bytes()
    wanted = {int.from_bytes(records[i: i + 8], "little"): records[i + 8: i + _RECORD]
              for i in range(0, len(records), _RECORD)}
    problems = []
    with BlockDevice.open(spec.target) as device:
        for first, count in _runs(sorted(wanted)):
            start = first * _OVERLAY_BLOCK
            stop = min((first + count) * _OVERLAY_BLOCK, spec.split)
            data = memoryview(device.read_uncached(spec.target_offset + start, stop - start))
            for block in range(first, first + count):
                inner = (block - first) * _OVERLAY_BLOCK
                if _block_digest(data[inner: inner + _OVERLAY_BLOCK]) != wanted[block]:
                    problems.append(f"bytes {spec.target_offset + block * _OVERLAY_BLOCK}-"
                                    f"{spec.target_offset + (block + 1) * _OVERLAY_BLOCK - 1} "
                                    "of the target differ from what ntfsresize wrote")
    if problems:
        raise VerificationError(
            f"Read-back after shrinking Windows on {spec.target} found {len(problems)} "
            f"block(s) the disk did not keep; first: {problems[0]}.",
            "The disk may be failing: restore again, or use another disk.", problems)


def _runs(blocks: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive block numbers as (first, count), at most _READ_BACK_RUN bytes each."""
    limit = _READ_BACK_RUN // _OVERLAY_BLOCK
    first = count = 0
    for block in blocks:
        if count and block == first + count and count < limit:
            count += 1
            continue
        if count:
            yield first, count
        first, count = block, 1
    if count:
        yield first, count


def _wait_mounted(mountpoint: Path, process: subprocess.Popen[bytes], log: Any) -> None:
    for _ in range(600):
        if os.path.ismount(mountpoint):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    log.seek(0)
    raise ToolError("Could not start the FUSE view used to shrink the Windows volume.",
                    "FUSE must work (modprobe fuse; fuse3 installed). Its output: "
                    + log.read().decode(errors="replace")[-600:])


def main(argv: list[str]) -> int:
    # libfuse3, whose write-back cache gathers ntfsresize's cluster-sized writes (mfusepy
    # would take libfuse2 where both are installed; the live image has only libfuse3).
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy  # type: ignore[import-untyped]  # ships no type hints

    spec = ViewSpec(**json.loads(argv[1]))
    mfusepy.FUSE(PartitionView(spec), argv[2], foreground=True, nothreads=True,
                 fsname="recovery-view")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
