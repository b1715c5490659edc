"""Mounting a file system found on a disk the technician plugged in (the image store).

NTFS goes through ntfs-3g (recovery.sys.ntfs3g); everything else the kernel mounts itself
(ext4, exfat, vfat, xfs, btrfs), except exFAT on a kernel without the driver, which falls
back to exfat-fuse (recovery.sys.exfatfuse says why). Unmounting is ntfs3g.unmount: one
`umount` for all, FUSE mounts included.
A file system inside a disk or image file (a partition without a node of its own) is
reached through a loop device over its byte range (ntfs-3g takes the offset itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recovery.sys import exfatfuse, losetup, ntfs3g
from recovery.sys.run import run


@contextmanager
def mounted(device: Path, fs_type: str, mountpoint: Path, *, read_write: bool = True
            ) -> Iterator[Path]:
    """Mount `device` (a partition node) on `mountpoint`; unmount on exit, even on error."""
    if fs_type == "ntfs":
        with ntfs3g.mount(device, 0, mountpoint, read_write) as point:
            yield point
        return
    mountpoint.mkdir(parents=True, exist_ok=True)
    _mount(device, fs_type, mountpoint, ["-o", "rw" if read_write else "ro"], read_write)
    try:
        yield mountpoint
    finally:
        run(["sync", "-f", str(mountpoint)], check=False)
        ntfs3g.unmount(mountpoint)


def _mount(source: Path, fs_type: str, mountpoint: Path, options: list[str],
           read_write: bool) -> None:
    """The kernel's mount; for exFAT on a kernel without the driver, exfat-fuse."""
    argv = ["mount", *options, *(["-t", fs_type] if fs_type else [])]
    result = run([*argv, str(source), str(mountpoint)], check=fs_type != "exfat")
    if result.returncode == 0:
        return
    if not exfatfuse.kernel_has_exfat():  # the failed mount would have loaded the module
        exfatfuse.mount(source, mountpoint, read_write)
        return
    run([*argv, str(source), str(mountpoint)])  # the kernel's own error, raised


@contextmanager
def mounted_range(source: Path, offset: int, size: int, fs_type: str, mountpoint: Path, *,
                  read_write: bool, sector_size: int = 512) -> Iterator[Path]:
    """Mount the file system `size` bytes long at `offset` in `source` (a disk, a loop
    device or an image file; offset and size 0: `source` is the partition itself) on
    `mountpoint`; unmount (and detach the loop device) on exit, even on error."""
    if fs_type == "ntfs":
        with ntfs3g.mount(source, offset, mountpoint, read_write, size=size) as point:
            yield point
        return
    if offset == 0 and size == 0:
        with mounted(source, fs_type, mountpoint, read_write=read_write) as point:
            yield point
        return
    with losetup.loop_device(source, offset=offset, size=size, read_only=not read_write,
                             sector_size=sector_size) as device, \
            mounted(device, fs_type, mountpoint, read_write=read_write) as point:
        yield point


def mount_read_only(image: Path, fs_type: str, mountpoint: Path) -> None:
    """Mount the file system held in the file `image` read-only on `mountpoint`, and leave
    it mounted (`recovery mount`); NTFS through ntfs-3g, others through a loop device."""
    if fs_type == "ntfs":
        ntfs3g.mount_file_read_only(image, mountpoint)
        return
    _mount(image, fs_type, mountpoint, ["-o", "ro,loop"], read_write=False)
