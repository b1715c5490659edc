"""The one interface through which this program reads and writes disks.

A `BlockDevice` is a whole disk given as a block device node (/dev/sda, /dev/nvme0n1,
/dev/loop3) or as a raw disk-image file; the rest of the engine cannot tell them apart.
Reads and writes are positional (pread/pwrite) so several threads can share one device.
Any OSError from the kernel becomes a DeviceIOError that names the device and the offset,
which is what a technician needs when a drive is failing or was pulled out.

A block device opened for writing is opened exclusively (O_EXCL): the kernel then refuses
to mount it or its partitions, and refuses other exclusive openers (a second console's
restore, mkfs, another program's partition scan) while we write. Non-exclusive opens
still work, so sgdisk/sfdisk can write the table meanwhile; only their request that the
kernel re-read it fails, so `reread_partitions()` asks again on our own descriptor once
everything is written. Reading past the page cache (O_DIRECT) is recovery.sys.directio's,
the one O_DIRECT code path.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from recovery.errors import DeviceIOError, Hint, SourceError, TargetInUseError, TargetReadOnlyError
from recovery.sys.directio import ALIGN, DirectDevice, close_descriptor, thread_buffer
from recovery.units import align_down, align_up

log = logging.getLogger(__name__)
_DIRECT_LOCK = threading.Lock()

BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKROGET = 0x125E
BLKFLSBUF = 0x1261
BLKRRPART = 0x125F


@dataclass
class BlockDevice:
    """An open whole disk. Use `BlockDevice.open(path)`; close it (or use `with`)."""

    path: Path
    writable: bool
    fd: int
    size: int
    logical_sector_size: int
    physical_sector_size: int
    is_block_device: bool
    kernel_read_only: bool
    _direct: DirectDevice | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path, *, writable: bool = False,
             sector_size: int | None = None, exclusive: bool | None = None) -> BlockDevice:
        """Open read-only unless `writable`; files get `sector_size` (default: detected).

        A writable block device is opened exclusively unless `exclusive` is False (a mere
        check that it can be written)."""
        path = Path(path)
        try:
            info = os.stat(path)
        except FileNotFoundError as exc:
            raise SourceError(f"{path} does not exist.",
                              "Check the device name; the drive may have been unplugged.",
                              hint=Hint.LIST_DISKS) from exc
        except OSError as exc:
            raise SourceError(f"{path} cannot be read: {exc.strerror}.",
                              "Run as root and check the device.") from exc
        is_block = stat.S_ISBLK(info.st_mode)
        if not is_block and not stat.S_ISREG(info.st_mode):
            raise SourceError(f"{path} is neither a disk nor a disk-image file.",
                              "Give a whole disk such as /dev/sda or a raw .img file.")
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        if is_block and (writable if exclusive is None else exclusive):
            flags |= os.O_EXCL
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if flags & os.O_EXCL and exc.errno == errno.EBUSY:
                raise TargetInUseError(
                    f"{path} is in use: it or one of its partitions is mounted, or another "
                    "program (another console's job, mkfs, a partitioning tool) holds it.",
                    "Unmount it and wait for the other job to finish; nothing was "
                    "written.") from exc
            if writable and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise TargetReadOnlyError(
                    f"{path} is read-only and cannot be written.",
                    "Remove the write protection (switch on the card or USB stick, "
                    "'blockdev --setrw') or choose another disk.") from exc
            raise SourceError(f"{path} cannot be opened: {exc.strerror}.",
                              "Run as root and check that the disk is still connected.") from exc
        try:
            device = cls._describe(path, fd, writable, is_block, info, sector_size)
        except BaseException:
            os.close(fd)
            raise
        if writable and is_block:
            device._forget_earlier_write_errors()
        return device

    @classmethod
    def _describe(cls, path: Path, fd: int, writable: bool, is_block: bool,
                  info: os.stat_result, sector_size: int | None) -> BlockDevice:
        if is_block:
            size = _ioctl_u64(fd, BLKGETSIZE64)
            logical = _ioctl_int(fd, BLKSSZGET)
            physical = _ioctl_int(fd, BLKPBSZGET)
            read_only = bool(_ioctl_int(fd, BLKROGET))
        else:
            size = info.st_size
            logical = sector_size or detect_file_sector_size(fd)
            physical = logical
            read_only = not os.access(path, os.W_OK)
        if writable and read_only:  # open() closes fd when this raises
            raise TargetReadOnlyError(
                f"{path} is write-protected.",
                "Remove the write protection or choose another disk.")
        return cls(path, writable, fd, size, logical, physical, is_block, read_only)

    def _forget_earlier_write_errors(self) -> None:
        """The kernel hands a failed write-back to the next fsync of a disk, even when the
        writes were another run's: a restore that a failing or pulled disk stopped would fail
        its rerun at the final flush, though the rerun rewrites and reads back everything.
        Collect that old error now, so that flush() reports only this descriptor's writes."""
        with suppress(OSError):
            os.fsync(self.fd)

    # --- context management -------------------------------------------------------------
    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        if self.fd >= 0:
            close_descriptor(self.fd, self.writable)
        self.fd = -1

    def __enter__(self) -> BlockDevice:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def rotational(self) -> bool:
        """The disk holding this device (or this image file) is known to spin: the drive
        said so (queue/rotational in sysfs, from its rotation rate). A loop device answers
        for the disk holding its backing file. False when nothing is known: no disk
        (tmpfs, FUSE), or a virtio disk, whose flag is the kernel's default and not a
        report (virtio-blk cannot tell what the host stores it on)."""
        info = os.fstat(self.fd)
        return _known_to_spin(info.st_rdev if stat.S_ISBLK(info.st_mode) else info.st_dev)

    # --- I/O ----------------------------------------------------------------------------
    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset`; past the end is an error, never short data."""
        if offset < 0 or offset + length > self.size:
            raise DeviceIOError(
                f"Read of {length} bytes at offset {offset} is outside {self.path} "
                f"({self.size} bytes).", "The disk is smaller than expected; check the device.")
        parts: list[bytes] = []
        done = 0
        while done < length:
            try:
                data = os.pread(self.fd, length - done, offset + done)
            except OSError as exc:
                raise self._io_error("read", offset + done, exc) from exc
            if not data:
                raise self._io_error("read", offset + done, OSError(errno.EIO, "short read"))
            parts.append(data)
            done += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        if not self.writable:
            raise TargetReadOnlyError(f"{self.path} was opened read-only.",
                                      "This is a bug: writes must go through the safety gate.")
        if offset < 0 or offset + len(data) > self.size:
            raise DeviceIOError(f"Write at offset {offset} is outside {self.path}.",
                                "The disk is smaller than expected; check the device.")
        view = memoryview(data)
        done = 0
        while done < len(view):
            try:
                done += os.pwrite(self.fd, view[done:], offset + done)
            except OSError as exc:
                raise self._io_error("write", offset + done, exc) from exc

    def flush(self) -> None:
        """Make every write durable on the medium (or in the image file)."""
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise self._io_error("flush", 0, exc) from exc

    def read_uncached(self, offset: int, length: int) -> bytes:
        """Read what the medium holds, not what the page cache remembers we wrote.

        O_DIRECT (through recovery.sys.directio) where the range can be aligned and the
        device allows it; otherwise the cached pages are dropped first.
        """
        start, end = align_down(offset, ALIGN), align_up(offset + length, ALIGN)
        if end <= self.size:
            window = thread_buffer(end - start, "uncached")[:end - start]
            if self.direct().read_into(start, window):
                return bytes(window[offset - start: offset - start + length])
        self.drop_cache(offset, length)
        return self.read_at(offset, length)

    def direct(self) -> DirectDevice:
        """This device's O_DIRECT access, opened on first use and closed with it."""
        with _DIRECT_LOCK:  # reads past the cache come from several threads
            if self._direct is None:
                self._direct = DirectDevice(self)
            return self._direct

    def drop_cache(self, offset: int = 0, length: int = 0) -> None:
        try:
            os.fsync(self.fd)
            os.posix_fadvise(self.fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            raise self._io_error("flush", offset, exc) from exc

    def reread_partitions(self) -> bool:
        """Ask the kernel to read the partition table again (BLKRRPART), on this
        descriptor: with the disk held exclusively, only its holder may. False, logged,
        when it cannot (an image file, a loop device without partition scanning, a
        partition still open); the table on the medium is right either way."""
        if not self.is_block_device:
            return False
        try:
            fcntl.ioctl(self.fd, BLKRRPART)
        except OSError as exc:
            log.info("kernel did not re-read the partition table of %s: %s", self.path,
                     exc.strerror)
            return False
        return True

    def _still_there(self) -> bool:
        return self.fd < 0 or _same_node(self.path, self.fd, self.is_block_device)

    def _io_error(self, what: str, offset: int, exc: OSError) -> DeviceIOError:
        gone = exc.errno in (errno.ENODEV, errno.ENXIO, errno.ENOENT) or not self._still_there()
        hint = ("The disk disappeared: reconnect it and run the same command again."
                if gone else
                "The disk may be failing or was disconnected; check the cable, then run the "
                "same command again (it resumes).")
        error = DeviceIOError(f"I/O error on {self.path} during {what} at byte offset {offset} "
                              f"(sector {offset // self.logical_sector_size}): {exc.strerror}.",
                              hint)
        error.gone = gone
        return error


def _same_node(path: Path, fd: int, is_block: bool) -> bool:
    """`path` still names what `fd` was opened from. An unplugged disk's node goes away
    while its open descriptor fails with EIO, as a bad sector does; so does the FUSE or
    network file system of an image file (stat: ENOTCONN, ESTALE). Telling the two apart
    stops a rescue from listing the rest of a vanished disk as unreadable zeros."""
    try:
        info = os.stat(path)
        return not is_block or info.st_rdev == os.fstat(fd).st_rdev
    except OSError:
        return False


def _known_to_spin(dev: int, depth: int = 0) -> bool:
    node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if "/virtio" in os.path.realpath(node):
        return False
    for disk in (node, node / ".."):  # a partition: its disk's
        with suppress(OSError, ValueError):
            backing = (disk / "loop" / "backing_file").read_text().strip()
            return depth < 8 and _known_to_spin(os.stat(backing).st_dev, depth + 1)
        with suppress(OSError):
            return (disk / "queue" / "rotational").read_text().strip() == "1"
    return False


def detect_file_sector_size(fd: int) -> int:
    """A disk-image file has no sector size of its own; find the one its table was made for.

    GPT: the header sits in LBA 1, at byte 512 or 4096. MBR: entries count in sectors, so
    the first partition's boot sector (0x55AA) lies at start*512 or at start*4096.
    """
    try:
        if os.pread(fd, 8, 4096) == b"EFI PART" and os.pread(fd, 8, 512) != b"EFI PART":
            return 4096
        mbr = os.pread(fd, 512, 0)
        if len(mbr) == 512 and mbr[510:512] == b"\x55\xaa":
            for entry in range(4):
                raw = mbr[446 + 16 * entry: 462 + 16 * entry]
                start = int.from_bytes(raw[8:12], "little")
                if raw[4] not in (0, 0xEE) and start:
                    return _sector_size_of_partition(fd, start)
    except OSError:
        pass
    return 512


def _sector_size_of_partition(fd: int, start_lba: int) -> int:
    for size in (512, 4096):
        if os.pread(fd, 2, start_lba * size + 510) == b"\x55\xaa":
            return size
    return 512


def _ioctl_u64(fd: int, request: int) -> int:
    value: int = struct.unpack("Q", fcntl.ioctl(fd, request, b"\0" * 8))[0]
    return value


def _ioctl_int(fd: int, request: int) -> int:
    value: int = struct.unpack("i", fcntl.ioctl(fd, request, b"\0" * 4))[0]
    return value
