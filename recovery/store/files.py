"""Crash-safe file writes on the store drive: temp file, fsync, rename, fsync the directory.

A store lives on a USB drive that may be pulled or lose power at any moment; a file is
either absent or complete, never half written under its real name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import threading
from pathlib import Path

from recovery.errors import Hint, StoreError, StoreFullError
from recovery.sys.directio import write_file_direct
from recovery.sys.mounts import mount_containing, read_mounts
from recovery.units import human_size

_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NETWORK_FS_TYPES = frozenset({"cifs", "smb3", "nfs", "nfs4", "fuse.sshfs"})
_counter = iter(range(1, 2**63))
_counter_lock = threading.Lock()
# Two PCs writing the same chunk into a shared store may run under the same pid.
_TOKEN = secrets.token_hex(4)


def temp_name(final: Path) -> Path:
    """A name in the same directory (so rename is atomic) that no other writer uses, on
    this PC or another one sharing the store."""
    with _counter_lock:
        serial = next(_counter)
    return final.with_name(f".{final.name}.{os.getpid()}-{serial}-{_TOKEN}.tmp")


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def full_error(root: Path, needed: int | None = None) -> StoreFullError:
    free = free_bytes(root) if root.exists() else 0
    need = f", {human_size(needed)} more is needed" if needed else ""
    return StoreFullError(
        f"The store {root} is full: {human_size(free)} free{need}.",
        "Free space on the store drive (delete old images) or use a larger drive, then "
        "capture again: chunks already stored are reused.", hint=Hint.RESUME_CAPTURE)


def write_error(path: Path, root: Path, exc: OSError) -> StoreError:
    if exc.errno in _SPACE_ERRNOS:
        return full_error(root)
    return StoreError(f"Cannot write {path} in the store {root}: {exc.strerror}.",
                      "Check that the store drive is connected and mounted read-write.")


Data = bytes | memoryview
_IOV_MAX = 1024  # pieces one writev takes (Linux's UIO_MAXIOV)


def write_atomic(path: Path, data: bytes, root: Path) -> None:
    """Write `data` as `path` (temp + fsync + rename); the directory is not fsynced here.

    Past the page cache where the file system allows (see recovery.sys.directio: several
    times faster for chunk-sized files), else through it.
    """
    publish(write_temp(path, root, data), path, root)


def write_temp(final: Path, root: Path, *pieces: Data, sync: bool = True,
               direct: bool = True) -> Path:
    """A new temp file next to `final` holding the `pieces` one after the other; fsynced
    when `sync` (else the caller fsyncs it with `fsync_file` before naming it); written
    past the page cache when `direct` and the file system allows it."""
    temp = temp_name(final)
    try:
        if not (direct and write_file_direct(temp, *pieces, sync=sync)):
            _write_pieces(temp, [piece for piece in pieces if len(piece)], sync)
    except OSError as exc:
        discard_temp(temp)
        raise write_error(final, root, exc) from exc
    return temp


def _write_pieces(path: Path, pieces: list[Data], sync: bool) -> None:
    """A new file holding `pieces`, through the page cache: one writev per call (a chunk's
    raw frame is 67 pieces; written one by one, each 3-byte block header was a system call
    of its own), no joined copy."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        first = 0
        while first < len(pieces):
            done = os.writev(fd, pieces[first:first + _IOV_MAX])
            while first < len(pieces) and done >= len(pieces[first]):
                done -= len(pieces[first])
                first += 1
            if done:  # a short write ended inside this piece
                pieces[first] = memoryview(pieces[first])[done:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def network_file_system(root: Path) -> bool:
    """Whether `root` lives on a network share (cifs, NFS, sshfs). An O_DIRECT write that
    is in flight when a cifs server goes away never returns (seen in the guest's kernel,
    6.1, on a soft mount): the job hung instead of failing. Through the page cache the
    write returns and the fsync before the chunk is named reports the lost server."""
    mount = mount_containing(root, read_mounts())
    return mount is not None and mount.fs_type in NETWORK_FS_TYPES


def publish(temp: Path, final: Path, root: Path) -> None:
    """Give a written and fsynced temp file its real name (atomically)."""
    try:
        os.rename(temp, final)
    except OSError as exc:
        discard_temp(temp)
        raise write_error(final, root, exc) from exc


def discard_temp(temp: Path) -> None:
    # On a read-only mount even unlinking a missing file fails (EROFS).
    with contextlib.suppress(OSError):
        temp.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    # Opened for writing, as the file was: some FUSE file systems sync only such handles.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (FAT over FUSE, network shares) refuse fsync on directories;
        # their renames are as durable as they can be made.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
