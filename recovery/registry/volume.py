"""Find and open the Windows volume: a partition device, a volume image, or a whole disk
(device or image file) plus a partition number, or the partition holding
`Windows\\System32\\config` when no number is given. Everything here only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyfsntfs
import pyvshadow

from recovery.engine.table import read_table
from recovery.errors import (
    Hint,
    RecoveryError,
    SourceError,
    UnsupportedLayoutError,
    VolumeStateError,
)
from recovery.fs.ntfs import is_ntfs
from recovery.fs.probe import BITLOCKER_OEM_ID
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.units import human_size

CONFIG_DIR = "\\Windows\\System32\\config"


@dataclass(frozen=True)
class WindowsVolume:
    """The NTFS volume `size` bytes long at `offset` of `source` (a device or image file)."""

    source: Path
    offset: int
    size: int
    partition: int | None = None

    def describe(self) -> str:
        where = f"partition {self.partition} of {self.source}" if self.partition else str(
            self.source)
        return f"{where} ({human_size(self.size)} NTFS)"

    def to_dict(self) -> dict[str, object]:
        return {"source": str(self.source), "offset": self.offset, "size": self.size,
                "partition": self.partition}


def _bitlocker_error(where: str) -> VolumeStateError:
    return VolumeStateError(f"{where} is encrypted with BitLocker.",
                            "Unlock it in Windows (or suspend BitLocker with "
                            "'manage-bde -protectors -disable C:') and try again.")


def locate_volume(path: Path, partition: int | None = None) -> WindowsVolume:
    """The Windows volume named by `path` (and `partition`); raises when there is none."""
    with BlockDevice.open(path) as device:
        boot = device.read_at(0, 512) if device.size >= 512 else b""
        if partition is None and is_ntfs(boot):
            return WindowsVolume(Path(path), 0, device.size)
        if partition is None and boot[3:11] == BITLOCKER_OEM_ID:
            raise _bitlocker_error(str(path))
        try:
            table = read_table(device)
        except RecoveryError as exc:
            raise UnsupportedLayoutError(
                f"{path} holds neither an NTFS volume nor a partition table.",
                "Give the Windows partition (e.g. /dev/sda3) or the whole disk.") from exc
        candidates = [p for p in table.data_partitions()
                      if partition is None or p.number == partition]
        if partition is not None and not candidates:
            numbers = ", ".join(str(p.number) for p in table.data_partitions())
            raise SourceError(f"{path} has no partition {partition} (it has {numbers}).",
                              "Pick one of those numbers.", hint=Hint.CHOOSE_PARTITION)
        found = [WindowsVolume(Path(path), p.start, p.size, p.number) for p in candidates
                 if _check_windows(device, p.start, p.size, f"partition {p.number} of {path}",
                                   strict=partition is not None)]
    if not found:
        raise SourceError(f"No Windows installation (Windows\\System32\\config) on {path}.",
                          "Give the Windows partition, or check the disk.",
                          hint=Hint.CHOOSE_PARTITION)
    if len(found) > 1:
        numbers = ", ".join(str(v.partition) for v in found)
        raise SourceError(f"{path} holds several Windows installations (partitions {numbers}).",
                          "Choose one of them.", hint=Hint.CHOOSE_PARTITION)
    return found[0]


def _check_windows(device: BlockDevice, offset: int, size: int, where: str,
                   strict: bool) -> bool:
    boot = device.read_at(offset, 512)
    if boot[3:11] == BITLOCKER_OEM_ID:
        if strict:
            raise _bitlocker_error(where)
        return False
    if not is_ntfs(boot):
        if strict:
            raise UnsupportedLayoutError(f"{where} is not an NTFS volume.",
                                         "Choose the partition that holds Windows.")
        return False
    return strict or _has_config(device, offset, size)


def _has_config(device: BlockDevice, offset: int, size: int) -> bool:
    try:
        volume = pyfsntfs.volume()
        volume.open_file_object(DeviceSlice(device, offset, size))
        found = volume.get_file_entry_by_path(CONFIG_DIR) is not None
        volume.close()
        return found
    except OSError:
        return False


@dataclass
class OpenVolume:
    """Read-only views of a Windows volume: its file system and its shadow copies."""

    volume: WindowsVolume
    device: BlockDevice | None  # None for a partition of a captured image
    ntfs: Any  # pyfsntfs.volume
    shadows: Any  # pyvshadow.volume, or None when the volume has no VSS header

    def read_file(self, path: str, fs: Any = None) -> bytes | None:
        """The file at `path` (backslashes, from the volume root), or None if absent."""
        entry = (fs or self.ntfs).get_file_entry_by_path(path)
        if entry is None or entry.has_directory_entries_index():
            return None
        data: bytes = entry.read_buffer(entry.size) if entry.size else b""
        return data

    def list_dir(self, path: str, fs: Any = None) -> list[str]:
        entry = (fs or self.ntfs).get_file_entry_by_path(path)
        if entry is None:
            return []
        return [child.name for child in entry.sub_file_entries]

    def shadow_fs(self, index: int) -> Any:
        snapshot = pyfsntfs.volume()
        snapshot.open_file_object(self.shadows.get_store(index))
        return snapshot


@contextmanager
def open_volume(volume: WindowsVolume, require_windows: bool = True) -> Iterator[OpenVolume]:
    with BlockDevice.open(volume.source) as device, open_file_volume(
            volume, lambda: DeviceSlice(device, volume.offset, volume.size), require_windows,
            device) as opened:
        yield opened


@contextmanager
def open_file_volume(volume: WindowsVolume, make_view: Callable[[], Any],
                     require_windows: bool = True, device: BlockDevice | None = None
                     ) -> Iterator[OpenVolume]:
    """The volume read through file objects `make_view()` returns (a slice of a device, or
    a partition of a captured image: recovery.store.imageview)."""
    ntfs = pyfsntfs.volume()
    try:
        ntfs.open_file_object(make_view())
    except OSError as exc:
        raise UnsupportedLayoutError(
            f"The NTFS file system on {volume.describe()} cannot be read: {exc}.",
            "Run 'chkdsk /f' from Windows or WinRE.") from exc
    if require_windows and ntfs.get_file_entry_by_path(CONFIG_DIR) is None:
        raise SourceError(f"{volume.describe()} has no Windows\\System32\\config folder.",
                          "Choose the partition that holds Windows.")
    shadows = None
    shadow_view = make_view()
    if pyvshadow.check_volume_signature_file_object(shadow_view):
        shadows = pyvshadow.volume()
        shadows.open_file_object(shadow_view)
    try:
        yield OpenVolume(volume, device, ntfs, shadows)
    finally:
        ntfs.close()
        if shadows is not None:
            shadows.close()
