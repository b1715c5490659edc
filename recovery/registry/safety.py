"""Before writing to a Windows volume: is it safe? Hibernated / Fast-Startup volumes,
dirty NTFS, BitLocker, volumes mounted elsewhere and read-only devices are refused, each
with what the technician should do about it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from recovery.errors import (
    RecoveryError,
    TargetReadOnlyError,
    UnsupportedLayoutError,
    VolumeStateError,
)
from recovery.fs.probe import probe_volume
from recovery.registry.volume import WindowsVolume
from recovery.sys import losetup
from recovery.sys.blockdev import BlockDevice
from recovery.sys.mounts import read_mounts

SYS_BLOCK = Path("/sys/class/block")


def write_refusals(volume: WindowsVolume) -> list[RecoveryError]:
    """Every reason not to write to `volume`; empty when writing is safe."""
    where = volume.describe()
    refusals: list[RecoveryError] = []
    with BlockDevice.open(volume.source) as device:
        info = probe_volume(device, volume.offset, volume.size)
    if info.bitlocker:
        refusals.append(VolumeStateError(
            f"{where} is encrypted with BitLocker.",
            "Unlock it in Windows or suspend BitLocker, then try again."))
    elif info.fs_type != "ntfs":
        refusals.append(UnsupportedLayoutError(f"{where} is not an NTFS volume.",
                                               "Choose the partition that holds Windows."))
    if info.hibernated:
        refusals.append(VolumeStateError(
            f"Windows on {where} is hibernated (Fast Startup); writing now would be lost "
            "or corrupt the volume when Windows resumes.",
            "Boot Windows and shut down with Shift held (or run 'shutdown /s /t 0'), or "
            "disable Fast Startup, then try again."))
    if info.dirty:
        refusals.append(VolumeStateError(
            f"The NTFS file system on {where} is marked dirty.",
            "Run 'chkdsk /f' on it from Windows or WinRE, then try again."))
    users = mounted_at(volume)
    if users:
        refusals.append(VolumeStateError(
            f"{where} is mounted at {', '.join(users)}.",
            f"Unmount it first (umount {users[0]}), then try again."))
    try:
        BlockDevice.open(volume.source, writable=True).close()
    except TargetReadOnlyError as exc:
        refusals.append(exc)
    return refusals


def _overlaps(start: int, size: int, other_start: int, other_size: int) -> bool:
    end = start + size if size else 1 << 62
    return start < other_start + other_size and other_start < end


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _nodes_over(volume: WindowsVolume) -> set[str]:
    """Device nodes through which the volume's bytes can be reached."""
    target = os.path.realpath(volume.source)
    nodes = {target}
    for entry in SYS_BLOCK.glob("loop*"):
        backing = losetup.backing_file(Path("/dev") / entry.name)
        if backing is None or os.path.realpath(backing) != target:
            continue
        offset = _read_int(entry / "loop" / "offset")
        size = _read_int(entry / "loop" / "sizelimit")
        if _overlaps(offset, size, volume.offset, volume.size):
            nodes.add(f"/dev/{entry.name}")
            nodes |= _partitions_over(entry.name, volume.offset - offset, volume.size)
    if stat.S_ISBLK(os.stat(target).st_mode):
        nodes |= _partitions_over(Path(target).name, volume.offset, volume.size)
    return nodes


def _partitions_over(disk: str, offset: int, size: int) -> set[str]:
    found = set()
    for part in (SYS_BLOCK / disk).glob(f"{disk}*"):
        start = _read_int(part / "start") * 512
        length = _read_int(part / "size") * 512
        if _overlaps(start, length, offset, size):
            found.add(f"/dev/{part.name}")
    return found


def mounted_at(volume: WindowsVolume) -> list[str]:
    nodes = _nodes_over(volume)
    return [m.mountpoint for m in read_mounts()
            if m.source.startswith("/") and os.path.realpath(m.source) in nodes]
