"""Bulk data past the page cache: whole chunks between a disk (or file) and aligned buffers.

The one O_DIRECT code path: chunk I/O (engine.chunking), BlockDevice.read_uncached and the
store's chunk files (read, and written one at a time; a capture's batched chunk files go
through the page cache, see recovery.store.objects) all come here.

Why: copying through the page cache is the slowest part of imaging on the machines we
measured (buffered writes ~430 MB/s, O_DIRECT writes 1.4-1.9 GB/s; reads likewise), and a
read-back check must see the medium, which O_DIRECT gives by construction. Only aligned
requests go direct; for anything else (odd tail of an image file, a partition aligned to
512 bytes, a file system that refuses O_DIRECT such as some FUSE mounts) the methods
return False and the caller uses BlockDevice's ordinary calls, which stay the reference.

Buffers are per thread (`thread_buffer`), page-aligned and reused, so the hot path
allocates nothing: a fresh 4 MiB buffer costs more in page faults than hashing it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from recovery.errors import DeviceIOError
from recovery.units import MiB

if TYPE_CHECKING:  # BlockDevice reads past the cache through this module
    from recovery.sys.blockdev import BlockDevice

ALIGN = 4096  # memory, offset and length alignment of every direct request
_REFUSED = (errno.EINVAL, errno.EOPNOTSUPP)
_local = threading.local()


def thread_buffer(size: int, slot: str = "data") -> memoryview:
    """A page-aligned buffer of at least `size` bytes owned by the calling thread.

    The same thread gets the same memory back on its next call with the same `slot`, so a
    view must not outlive the work item that asked for it.
    """
    buffers: dict[str, _Buffer] | None = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    held = buffers.get(slot)
    if held is None or held.size < size:
        if held is not None:
            # A view of it may still be alive (a zstd reader not yet collected): then the
            # memory goes when that view does.
            with contextlib.suppress(BufferError):
                held.memory.close()
        held = buffers[slot] = _Buffer.huge_paged(max(size, ALIGN))
    return memoryview(held.memory)[held.start:held.start + held.size]


# Direct requests from memory in 2 MiB huge pages reach the disk as a few large segments
# instead of one per 4 KiB page (virtio-blk here takes at most 254 segments a request, so
# a 4 MiB chunk went out as five requests). Measured on the bench's restore + read-back:
# 1.76-1.91 s instead of 2.20-2.38 s, system time 0.41-0.48 s instead of 0.66-0.81 s
# (docs/benchmarks.md, "Issue 9, eighth pass"). Private mappings only: Python's default
# shared anonymous mapping is shmem, which gets no huge pages.
HUGE_PAGE = 2 * MiB


@dataclass(frozen=True)
class _Buffer:
    memory: mmap.mmap
    start: int  # where the buffer begins in `memory`
    size: int

    @classmethod
    def huge_paged(cls, size: int) -> _Buffer:
        """`size` bytes of private memory whose whole 2 MiB stretches are huge pages where
        the kernel offers them (THP "always" in the live image's kernel, "madvise" on the
        test machines: both honour MADV_HUGEPAGE); plain pages otherwise."""
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        if size < HUGE_PAGE:
            return cls(mmap.mmap(-1, size, flags=flags), 0, size)
        # Mapped with room to begin on a 2 MiB boundary: Debian 12's kernel (6.1) does not
        # align anonymous mappings itself. Pages never touched cost no memory.
        memory = mmap.mmap(-1, size + HUGE_PAGE, flags=flags)
        start = -ctypes.addressof(ctypes.c_char.from_buffer(memory)) % HUGE_PAGE
        with contextlib.suppress(OSError, AttributeError):  # a kernel without THP
            memory.madvise(mmap.MADV_HUGEPAGE, start, size // HUGE_PAGE * HUGE_PAGE)
        return cls(memory, start, size)


def is_aligned(offset: int, length: int) -> bool:
    return offset % ALIGN == 0 and length % ALIGN == 0


class DirectDevice:
    """O_DIRECT access to an open BlockDevice; errors name the device and offset as its own.

    `read_into` / `write_from` return False (and do nothing) when the request is not
    aligned or the device refuses direct I/O; the caller then uses the BlockDevice.
    """

    def __init__(self, device: BlockDevice) -> None:
        self.device = device
        # Never O_EXCL: the device's own descriptor holds the exclusive claim, and a second
        # exclusive open, even by the same process, would be refused.
        flags = (os.O_RDWR if device.writable else os.O_RDONLY) | os.O_DIRECT | os.O_CLOEXEC
        self._fd: int | None
        try:
            self._fd = os.open(device.path, flags)
        except OSError:
            self._fd = None
        self._refused = self._fd is None

    @property
    def active(self) -> bool:
        """Direct I/O is open and has not been refused by the file system."""
        return self._fd is not None and not self._refused

    def close(self) -> None:
        fd, self._fd, self._refused = self._fd, None, True
        if fd is not None:
            close_descriptor(fd, self.device.writable)

    def __enter__(self) -> DirectDevice:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def read_into(self, offset: int, view: memoryview, align: int = ALIGN) -> bool:
        """Fill `view` (aligned memory) with the medium's bytes at `offset`.

        `align` may go down to the logical sector size: a rescue read of one sector must
        fail alone, not with the rest of its page.
        """
        return self._transfer("read", offset, view, max(align, self.device.logical_sector_size))

    def write_from(self, offset: int, view: memoryview) -> bool:
        """Write `view` (aligned memory) at `offset`; durable only after device.flush()."""
        if not self.device.writable:
            return False
        return self._transfer("write", offset, view)

    def _transfer(self, what: str, offset: int, view: memoryview, align: int = ALIGN) -> bool:
        fd = self._fd
        if fd is None or self._refused or offset % align or len(view) % align or \
                offset + len(view) > self.device.size:
            return False
        done = 0
        while done < len(view):
            try:
                if what == "read":
                    moved = os.preadv(fd, [view[done:]], offset + done)
                else:
                    moved = os.pwritev(fd, [view[done:]], offset + done)
            except OSError as exc:
                if exc.errno in _REFUSED and done == 0:
                    # The file system refuses O_DIRECT after all; other threads may be
                    # using the descriptor, so it stays open until close().
                    self._refused = True
                    return False
                raise _io_error(self.device, what, offset + done, exc) from exc
            if moved <= 0:
                raise _io_error(self.device, what, offset + done,
                                OSError(errno.EIO, f"short {what}"))
            done += moved
        return True


def close_descriptor(fd: int, writable: bool) -> None:
    """Close `fd`. Closing a read-only descriptor loses nothing, so its error (the FUSE or
    network file system of an image file went away: ENOTCONN) must not hide the error
    that ended the job; a writable one's error may be lost writes and is raised."""
    if writable:
        os.close(fd)
        return
    with contextlib.suppress(OSError):
        os.close(fd)


def _io_error(device: BlockDevice, what: str, offset: int, exc: OSError) -> DeviceIOError:
    # The BlockDevice words its own errors; direct I/O must read exactly the same.
    return device._io_error(what, offset, exc)


def write_file_direct(path: Path, *pieces: bytes | memoryview, sync: bool = True) -> bool:
    """Create `path` (which must not exist) holding the `pieces` one after the other,
    written with O_DIRECT, and fsynced when `sync`.

    The last block is padded to the alignment and the file cut back to its length (a chunk
    file brings its own padding, so is never cut back). Returns False, with nothing left
    behind, when the file system refuses O_DIRECT.
    """
    length = sum(len(piece) for piece in pieces)
    padded = -(-length // ALIGN) * ALIGN
    buffer = thread_buffer(padded, "file")
    done = 0
    for piece in pieces:
        buffer[done:done + len(piece)] = piece
        done += len(piece)
    buffer[length:padded] = bytes(padded - length)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT | os.O_CLOEXEC,
                     0o644)
    except OSError as exc:
        if exc.errno in _REFUSED:
            # The kernel creates the file before it refuses O_DIRECT (tmpfs before Linux
            # 6.6, ramfs): the caller's own create then failed with "File exists" (a store
            # in the live system's RAM was refused so). O_EXCL: the file is this call's.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return False
        raise
    try:
        done = 0
        while done < padded:
            done += os.pwritev(fd, [buffer[done:padded]], done)
        if padded != length:
            os.ftruncate(fd, length)
        if sync:
            os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        if exc.errno in _REFUSED:
            return False
        raise
    os.close(fd)
    return True


def read_file_direct(path: Path) -> memoryview | None:
    """The whole of `path` read with O_DIRECT into this thread's "file" buffer, or None
    when the file system refuses O_DIRECT (the caller then reads it normally)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in _REFUSED:
            return None
        raise
    try:
        size = os.fstat(fd).st_size
        buffer = thread_buffer(-(-size // ALIGN) * ALIGN, "file")
        done = 0
        while done < size:
            got = os.preadv(fd, [buffer[done:]], done)
            if got <= 0:
                raise OSError(errno.EIO, f"{path} ended at byte {done} of {size}")
            done += got
    except OSError as exc:
        if exc.errno in _REFUSED:
            return None
        raise
    finally:
        os.close(fd)
    return buffer[:size]
