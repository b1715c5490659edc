"""The ntfs-3g package's tools: mkntfs, ntfs-3g mounts, ntfsfix, ntfsinfo, ntfsclone.

Volumes are addressed as (source, offset, size): `source` is a whole disk (block device or
disk-image file) and the volume lives `offset` bytes into it. These tools only take a device
or file whose byte 0 is the boot sector, so a loop device with --offset/--sizelimit stands in
for the partition; this kernel has no partition parsers for loop devices anyway.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import blake3

from recovery.errors import ToolError, VolumeStateError
from recovery.sys import losetup
from recovery.sys.run import run, run_streaming, run_text

UNMOUNT_TRIES = 10
NTFSCLONE_MAGIC = b"\0ntfsclone-image"
# ntfsclone's packed image header: magic, major, minor, cluster size, device size,
# clusters, clusters in use, offset of the data.
_NTFSCLONE_HEADER = struct.Struct("<16sBBIqqqI")


@dataclass(frozen=True)
class NtfscloneImage:
    """What `ntfsclone --save-image` says about a volume, and the hash of its image stream."""

    blake3: str
    cluster_size: int
    clusters: int
    clusters_in_use: int

    @property
    def used_bytes(self) -> int:
        return self.clusters_in_use * self.cluster_size


@dataclass(frozen=True)
class NtfsfixReport:
    ok: bool
    output: str


@contextmanager
def volume_device(source: Path, offset: int = 0, size: int = 0, *, read_only: bool = True,
                  sector_size: int = 512) -> Iterator[Path]:
    """A device node whose byte 0 is the volume's boot sector (a loop device over the range)."""
    with losetup.loop_device(Path(source), offset=offset, size=size, read_only=read_only,
                             sector_size=sector_size) as device:
        yield device


def mkntfs(source: Path, offset: int = 0, size: int = 0, *, label: str = "",
           cluster_size: int | None = None, sector_size: int = 512, quick: bool = True) -> None:
    """Format the byte range as NTFS; the boot sector records the partition start sector
    and a conventional geometry, which Windows needs to boot from it."""
    argv = ["mkntfs", "--force", "--sector-size", str(sector_size),
            "--partition-start", str(offset // sector_size), "--heads", "255",
            "--sectors-per-track", "63"]
    if quick:
        argv += ["--fast", "--quick"]
    if label:
        argv += ["--label", label]
    if cluster_size:
        argv += ["--cluster-size", str(cluster_size)]
    with volume_device(source, offset, size, read_only=False,
                       sector_size=sector_size) as device:
        run([*argv, str(device)])


@contextmanager
def mount(source: Path, offset: int, mountpoint: Path, read_write: bool, *, size: int = 0,
          options: tuple[str, ...] = ()) -> Iterator[Path]:
    """Mount the NTFS volume at `offset` in `source` with ntfs-3g; unmounts on exit.

    ntfs-3g does not mount hibernated (Fast Startup) or unclean volumes read-write: it
    falls back to read-only and says so on stderr. A caller that asked for read-write gets
    a VolumeStateError with ntfs-3g's reason instead of a silently read-only mount.
    """
    mountpoint.mkdir(parents=True, exist_ok=True)
    with volume_device(source, offset, size, read_only=not read_write) as device:
        mode = "rw" if read_write else "ro"
        result = run(["ntfs-3g", "-o", ",".join([mode, *options]), str(device),
                      str(mountpoint)])
        try:
            if read_write and os.statvfs(mountpoint).f_flag & os.ST_RDONLY:
                raise _refused_read_write(source, offset, result.stderr)
            yield mountpoint
        finally:
            unmount(mountpoint)
            # The FUSE daemon may still hold the loop device for a moment; push its writes
            # through to the backing file before the loop device goes away.
            run(["blockdev", "--flushbufs", str(device)], check=False)


def _refused_read_write(source: Path, offset: int, stderr: bytes) -> VolumeStateError:
    reason = " ".join(stderr.decode(errors="replace").split())
    return VolumeStateError(
        f"The NTFS volume at byte {offset} of {source} cannot be written: {reason}",
        "Boot Windows and shut it down fully (hold Shift while choosing Shut down, or run "
        "'shutdown /s /t 0'; turn off Fast Startup), or run 'chkdsk /f', then try again.")


def mount_file_read_only(image: Path, mountpoint: Path) -> None:
    """ntfs-3g -o ro on a file holding one NTFS volume (it needs no loop device for a
    file); stays mounted until `unmount`."""
    run(["ntfs-3g", "-o", "ro", str(image), str(mountpoint)])


def unmount(mountpoint: Path) -> None:
    """Unmount an ntfs-3g mount. As root on a block device it is 'fuseblk', whose unmount
    waits for ntfs-3g to write everything back.

    A process that looks into every mount for a moment (a desktop indexer, a store scan)
    makes umount fail with "target is busy"; a few retries outlast it.
    """
    for _ in range(UNMOUNT_TRIES - 1):
        if run(["umount", str(mountpoint)], check=False).returncode == 0:
            return
        time.sleep(0.5)
    run(["umount", str(mountpoint)])


def ntfsfix_check(source: Path, offset: int = 0, size: int = 0) -> NtfsfixReport:
    """`ntfsfix --no-action`: does the volume open and are $MFT/$MFTMirr and the boot
    sectors consistent? Writes nothing."""
    with volume_device(source, offset, size) as device:
        result = run(["ntfsfix", "--no-action", str(device)], check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    return NtfsfixReport(ok=result.returncode == 0, output=output)


def ntfsfix(source: Path, offset: int = 0, size: int = 0, *, clear_dirty: bool = False
            ) -> NtfsfixReport:
    """Repair what ntfsfix can; `clear_dirty` also clears the volume dirty flag, which hides
    problems from chkdsk, so only do it when asked to."""
    argv = ["ntfsfix"]
    if clear_dirty:
        argv.append("--clear-dirty")
    with volume_device(source, offset, size, read_only=False) as device:
        result = run([*argv, str(device)], check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    return NtfsfixReport(ok=result.returncode == 0, output=output)


def ntfsinfo_volume(source: Path, offset: int = 0, size: int = 0) -> dict[str, str]:
    """`ntfsinfo --mft`'s "Key: value" lines (Volume Name, Volume Flags, Cluster Size, ...)."""
    with volume_device(source, offset, size) as device:
        text = run_text(["ntfsinfo", "--force", "--mft", str(device)])
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key not in facts:
            facts[key.strip()] = value.strip()
    return facts


def ntfsclone_image(source: Path, offset: int = 0, size: int = 0, *, force: bool = False
                    ) -> NtfscloneImage:
    """Stream `ntfsclone --save-image -o -` through BLAKE3 and read its header counts.

    The stream is deterministic for a given volume, so equal hashes before and after a
    round trip prove every used cluster (and the metadata) came back.
    """
    hasher = blake3.blake3()
    head = bytearray()

    def consume(block: bytes) -> None:
        if len(head) < _NTFSCLONE_HEADER.size:
            head.extend(block[: _NTFSCLONE_HEADER.size - len(head)])
        hasher.update(block)

    argv = ["ntfsclone", "--save-image", "--output", "-"]
    if force:
        argv.append("--force")
    with volume_device(source, offset, size) as device:
        run_streaming([*argv, str(device)], consume)
    if len(head) < _NTFSCLONE_HEADER.size or not head.startswith(NTFSCLONE_MAGIC):
        raise ToolError(f"ntfsclone wrote no image header for the volume at offset {offset} "
                        f"of {source}.", "Check that the range holds an NTFS volume.")
    _magic, _major, _minor, cluster, _device_size, clusters, in_use, _data = (
        _NTFSCLONE_HEADER.unpack(bytes(head)))
    return NtfscloneImage(hasher.hexdigest(), cluster, clusters, in_use)


def ntfsclone_image_hash(source: Path, offset: int = 0, size: int = 0) -> str:
    return ntfsclone_image(source, offset, size).blake3


def ntfsclone_used_bytes(source: Path, offset: int = 0, size: int = 0) -> int:
    return ntfsclone_image(source, offset, size).used_bytes
