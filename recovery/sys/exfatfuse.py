"""exfat-fuse: mounting an exFAT volume where the running kernel has no exfat driver.

Why a fallback exists at all: Linux has had an exfat driver since 5.7 and the live image's
kernel loads it (`mount -t exfat` autoloads the module), so on a technician's PC this module
is never used. A build or CI host may run a kernel built without it, though ("unknown
filesystem type 'exfat'"), and the exFAT store (the capture wizard's default for a new
drive) must work there too, or its path (format, mount read-write, capture into it, read it
back) is never run by the tests. exfat-fuse mounts it as 'fuseblk' on the device, like
ntfs-3g: the same `umount` ends it, and umount waits for the daemon to write everything
back before it returns.
"""

from __future__ import annotations

from pathlib import Path

from recovery.sys.run import run

FILESYSTEMS = Path("/proc/filesystems")
TOOL = "mount.exfat-fuse"


def kernel_has_exfat(filesystems: Path = FILESYSTEMS) -> bool:
    """Whether the kernel registered an exfat driver. Read after a `mount -t exfat` was
    tried: that attempt loads the module if there is one, so absence means there is none."""
    try:
        lines = filesystems.read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[-1:] == ["exfat"] for line in lines)


def mount(device: Path, mountpoint: Path, read_write: bool) -> None:
    """Mount the exFAT volume on `device` (its byte 0 is the boot sector) at `mountpoint`;
    unmount it with `umount` (recovery.sys.ntfs3g.unmount)."""
    run([TOOL, "-o", "rw" if read_write else "ro", str(device), str(mountpoint)])
