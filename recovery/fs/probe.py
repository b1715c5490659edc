"""What is on a volume, before capturing it: file system, used blocks, and Windows state
that a technician must know about (BitLocker, hibernation / Fast Startup, dirty NTFS).

Reads only: the boot sector, the file system's allocation map, and for NTFS two files
through libfsntfs over a DeviceSlice (no mount, so a dead PC's disk is never written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyfsntfs

from recovery.errors import DeviceIOError, RecoveryError
from recovery.fs.fat import looks_like_fat, read_fat
from recovery.fs.ntfs import is_ntfs, read_ntfs
from recovery.model.extents import Extent
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice

FsType = Literal["ntfs", "fat12", "fat16", "fat32", "bitlocker", "unknown"]
BITLOCKER_OEM_ID = b"-FVE-FS-"

WARN_BITLOCKER = ("BitLocker encryption is on for this volume: it is captured block by block "
                  "as encrypted data. Have the BitLocker recovery key ready; Windows may ask "
                  "for it after a restore.")
WARN_HIBERNATED = ("Windows is hibernated (Fast Startup) on this volume: a restore will resume "
                   "that state; boot Windows and shut down with Shift held before capturing "
                   "if you can.")
WARN_RESUMED = ("Windows resumed from hibernation on this volume and was not shut down "
                "cleanly since (hiberfil.sys says WAKE): a restore brings back that state; "
                "boot Windows and shut down with Shift held before capturing if you can.")
WARN_DIRTY = ("The NTFS file system on this volume is marked dirty (Windows did not shut down "
              "cleanly or found errors): a restore brings that state back; run 'chkdsk /f' "
              "in Windows before capturing if you can.")


@dataclass(frozen=True)
class VolumeInfo:
    """A volume's file system and state; `used` is relative to the volume start."""

    fs_type: FsType
    label: str = ""
    cluster_size: int = 0
    used: list[Extent] = field(default_factory=list)
    used_bytes: int = 0
    dirty: bool = False
    bitlocker: bool = False
    hibernated: str | None = None
    windows_system: bool = False
    windows_version: str = ""
    warnings: tuple[str, ...] = ()
    serial: str = ""
    # The read error that left the used blocks unknown (all of the volume is captured);
    # "" when they were read, or are unknown for another reason (BitLocker, damage).
    probe_error: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready facts (the extents themselves are left to the manifest)."""
        return {"fs_type": self.fs_type, "label": self.label, "serial": self.serial,
                "cluster_size": self.cluster_size, "used_bytes": self.used_bytes,
                "used_extents": len(self.used), "dirty": self.dirty,
                "bitlocker": self.bitlocker, "hibernated": self.hibernated,
                "windows_system": self.windows_system,
                "windows_version": self.windows_version, "warnings": list(self.warnings)}


@dataclass(frozen=True)
class WindowsFacts:
    hibernated: str | None = None
    windows_system: bool = False
    problem: str = ""


def probe_volume(device: BlockDevice, offset: int, size: int,
                 read_errors_ok: bool = False) -> VolumeInfo:
    """Identify the volume at `offset` (`size` bytes) of `device` and map its used bytes.

    A damaged file system is not an error here: it is captured in full, with a warning,
    because a recovery tool must still be able to image a broken disk. `read_errors_ok`
    (a rescue capture): an unreadable boot sector is such damage too, not an error.
    """
    whole: list[Extent] = [(0, size)] if size > 0 else []
    if size < 512:
        return VolumeInfo("unknown", used=whole, used_bytes=size)
    try:
        boot = device.read_at(offset, 512)
    except DeviceIOError as exc:
        if not read_errors_ok or exc.gone:
            raise
        return _damaged("unknown", size, exc)
    if boot[3:11] == BITLOCKER_OEM_ID:
        return VolumeInfo("bitlocker", used=whole, used_bytes=size, bitlocker=True,
                          warnings=(WARN_BITLOCKER,))
    if is_ntfs(boot):
        return _probe_ntfs(device, offset, size)
    if looks_like_fat(boot):
        return _probe_fat(device, offset, size)
    return VolumeInfo("unknown", used=whole, used_bytes=size)


def _probe_ntfs(device: BlockDevice, offset: int, size: int) -> VolumeInfo:
    try:
        volume = read_ntfs(device, offset, size)
    except RecoveryError as exc:
        return _damaged("ntfs", size, exc)
    facts = windows_facts(device, offset, size)
    warnings = [WARN_DIRTY] if volume.dirty else []
    if facts.hibernated == "hibernated":
        warnings.append(WARN_HIBERNATED)
    elif facts.hibernated == "resumed":
        warnings.append(WARN_RESUMED)
    if facts.problem:
        warnings.append(facts.problem)
    return VolumeInfo("ntfs", volume.label, volume.boot.cluster_size, volume.used,
                      volume.used_bytes, volume.dirty, False, facts.hibernated,
                      facts.windows_system, "", tuple(warnings), volume.boot.serial_text)


def _probe_fat(device: BlockDevice, offset: int, size: int) -> VolumeInfo:
    try:
        volume = read_fat(device, offset, size)
    except RecoveryError as exc:
        return _damaged("unknown", size, exc)
    boot = volume.boot
    return VolumeInfo(boot.fat_type, volume.label, boot.cluster_size, volume.used,
                      volume.used_bytes, serial=boot.serial_text)


def _damaged(fs_type: FsType, size: int, exc: RecoveryError) -> VolumeInfo:
    warning = (f"{exc.title} Its used blocks are unknown, so all {size} bytes will be "
               "captured.")
    return VolumeInfo(fs_type, used=[(0, size)], used_bytes=size, warnings=(warning,),
                      probe_error=exc.title if isinstance(exc, DeviceIOError) else "")


def windows_facts(device: BlockDevice, offset: int, size: int) -> WindowsFacts:
    """Hibernation state and whether this is a Windows system volume, read via libfsntfs."""
    volume = pyfsntfs.volume()
    try:
        volume.open_file_object(DeviceSlice(device, offset, size))
    except OSError as exc:
        return WindowsFacts(problem=f"The files on this NTFS volume could not be read ({exc}); "
                                    "hibernation and Windows were not checked.")
    try:
        config = volume.get_file_entry_by_path("\\Windows\\System32\\config")
        is_system = config is not None and config.has_directory_entries_index()
        return WindowsFacts(hibernation_state(volume), bool(is_system))
    except OSError as exc:
        return WindowsFacts(problem=f"Some files on this NTFS volume could not be read ({exc}); "
                                    "hibernation and Windows were not fully checked.")
    finally:
        volume.close()


def hibernation_state(volume: pyfsntfs.volume) -> str | None:
    """'hibernated' for a hibr/HIBR header, 'resumed' for wake/WAKE, else None."""
    entry = volume.get_file_entry_by_path("\\hiberfil.sys")
    if entry is None or entry.get_size() < 4:
        return None
    signature = bytes(entry.read_buffer_at_offset(4, 0)).lower()
    return {b"hibr": "hibernated", b"wake": "resumed"}.get(signature)
