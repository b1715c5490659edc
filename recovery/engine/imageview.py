"""A FUSE view of one partition being shrunk: the target below the new end, the image above.

Shrinking a restored NTFS volume means moving the data that lies past the new end. No
staging copy is made and nothing is written to the store (it may be read-only): the
target's partition holds the image's used clusters below the new end; this view serves the
whole old-size volume as one file whose bytes below `split` are the target's and whose
bytes above are read from the image's chunks. ntfsresize runs on the file and relocates
everything past the new end, reading it from the image and writing it below `split`, that
is into the target. Writes above `split` (ntfsresize updating metadata it will move anyway)
are kept in memory: they must never reach the disk, where the next partition now lies.

The view runs as its own process (python3 -m recovery.engine.imageview SPEC MOUNTPOINT),
so serving I/O never competes for the GIL or a thread pool with the engine that waits.
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

from recovery.errors import ToolError
from recovery.sys.run import run

VOLUME = "volume"
_OVERLAY_BLOCK = 4096


@dataclass(frozen=True)
class ViewSpec:
    store: str
    image: str
    partition: int  # partition number in the image
    target: str  # whole target disk (block device or image file); "" with split 0
    target_offset: int  # where the partition starts on the target
    split: int  # bytes from the partition start: below from the target, above from the image
    size: int  # the image's size of the partition (the view's length)


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
        pieces = []
        position = offset
        while position < end:
            if position < self.spec.split:
                stop = min(end, self.spec.split)
                pieces.append(os.pread(self.fd, stop - position,
                                       self.spec.target_offset + position))
            else:
                stop = min(end, (position // _OVERLAY_BLOCK + 1) * _OVERLAY_BLOCK)
                pieces.append(self._image_bytes(position, stop))
            position = stop
        return b"".join(pieces)

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        if offset + len(data) > self.spec.size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        below = max(0, min(len(data), self.spec.split - offset))
        if below:
            os.pwrite(self.fd, data[:below], self.spec.target_offset + offset)
        position = offset + below
        while position < offset + len(data):
            block = position // _OVERLAY_BLOCK
            stop = min(offset + len(data), (block + 1) * _OVERLAY_BLOCK)
            with self.guard:
                buffer = self.overlay.get(block)
                if buffer is None:
                    start = block * _OVERLAY_BLOCK
                    buffer = bytearray(self._image_bytes(start, start + _OVERLAY_BLOCK))
                    self.overlay[block] = buffer
                inner = position - block * _OVERLAY_BLOCK
                buffer[inner: inner + stop - position] = data[position - offset: stop - offset]
            position = stop
        return len(data)

    def fsync(self, path: str, datasync: int, fh: Any) -> int:
        if self.fd >= 0:
            os.fsync(self.fd)
        return 0

    def flush(self, path: str, fh: Any) -> int:
        return 0

    def destroy(self, path: str) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)

    def _image_bytes(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the image's partition (never crossing a 4 KiB block)."""
        block = start // _OVERLAY_BLOCK
        with self.guard:
            written = self.overlay.get(block)
            if written is not None:
                inner = start - block * _OVERLAY_BLOCK
                return bytes(written[inner: inner + stop - start])
        return self.image.read_at(start, stop - start)


@contextmanager
def partition_view(spec: ViewSpec) -> Iterator[Path]:
    """Serve the view until the block ends; yields the path of the volume file."""
    mountpoint = Path(tempfile.mkdtemp(prefix="recovery-view-"))
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "recovery.engine.imageview", json.dumps(asdict(spec)),
             str(mountpoint)], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_mounted(mountpoint, process, log)
            yield mountpoint / VOLUME
        finally:
            if os.path.ismount(mountpoint):
                run(["fusermount3", "-u", str(mountpoint)], check=False)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            mountpoint.rmdir()


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
    import mfusepy  # type: ignore[import-untyped]  # ships no type hints

    spec = ViewSpec(**json.loads(argv[1]))
    mfusepy.FUSE(PartitionView(spec), argv[2], foreground=True, nothreads=True,
                 direct_io=True, fsname="recovery-view")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
