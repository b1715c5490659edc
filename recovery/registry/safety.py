"""Before writing to a Windows volume: is it safe? Hibernated / Fast-Startup volumes,
dirty NTFS, BitLocker, volumes mounted elsewhere and read-only devices are refused, each
with what the technician should do about it.
"""

from __future__ import annotations

from recovery.engine.disks import mountpoints_over
from recovery.errors import (
    RecoveryError,
    TargetReadOnlyError,
    UnsupportedLayoutError,
    VolumeStateError,
)
from recovery.fs.probe import probe_volume
from recovery.registry.volume import WindowsVolume
from recovery.sys.blockdev import BlockDevice


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
        # Only asks whether it can be written: no exclusive claim on the whole disk.
        BlockDevice.open(volume.source, writable=True, exclusive=False).close()
    except TargetReadOnlyError as exc:
        refusals.append(exc)
    return refusals


def mounted_at(volume: WindowsVolume) -> list[str]:
    """Where the volume's bytes are mounted (engine.disks knows every way they can be)."""
    return mountpoints_over(volume.source, volume.offset, volume.size)
