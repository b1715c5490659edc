"""probe_volume on real volumes: file system, used bytes and the Windows state warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.errors import VolumeStateError
from recovery.fs.ntfs import MFT_RECORD_BITMAP, NtfsReader
from recovery.fs.probe import (
    WARN_BITLOCKER,
    WARN_DIRTY,
    WARN_HIBERNATED,
    WARN_RESUMED,
    VolumeInfo,
    probe_volume,
)
from recovery.sys import losetup, ntfs3g
from recovery.sys.blockdev import BlockDevice
from tests.fsbuild import (
    BuiltVolume,
    MiB,
    blank_image,
    fill_ntfs,
    make_fat,
    make_ntfs,
    mark_bitlocker,
    raw_fixture_volume,
    set_ntfs_dirty,
    write_hiberfil,
)


def _probe(volume: BuiltVolume) -> VolumeInfo:
    with volume.open() as device:
        return probe_volume(device, volume.offset, volume.size)


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_plain_ntfs_volume(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB, label="DATA")
    info = _probe(volume)
    assert (info.fs_type, info.label, info.cluster_size) == ("ntfs", "DATA", 4096)
    assert not (info.dirty or info.bitlocker or info.windows_system)
    assert info.hibernated is None and info.warnings == ()
    clone = ntfs3g.ntfsclone_image(volume.image, volume.offset, volume.size)
    assert info.used_bytes == clone.used_bytes + 512
    assert info.to_dict()["used_bytes"] == info.used_bytes


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_windows_formatted_fixture_is_a_system_volume(fixtures_dir: Path, tmp_path: Path
                                                      ) -> None:
    volume = raw_fixture_volume(fixtures_dir / "volumes" / "ntfs-windows-formatted.qcow2",
                                tmp_path / "win.raw")
    info = _probe(volume)
    assert info.fs_type == "ntfs" and info.windows_system
    clone = ntfs3g.ntfsclone_image(volume.image, 0, volume.size)
    assert info.used_bytes == clone.used_bytes + 512


def test_vss_fixture_is_data_not_system(fixtures_dir: Path, tmp_path: Path) -> None:
    volume = raw_fixture_volume(fixtures_dir / "volumes" / "ntfs-vss-2stores.qcow2",
                                tmp_path / "vss.raw")
    info = _probe(volume)
    assert (info.fs_type, info.label, info.windows_system) == ("ntfs", "vsstest", False)


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_windows_tree_made_with_ntfs3g_is_a_system_volume(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    fill_ntfs(volume, tmp_path / "mnt", {"Windows/System32/config/SYSTEM": b"regf"})
    assert _probe(volume).windows_system


@pytest.mark.parametrize(("signature", "state", "warning"), [
    (b"HIBR", "hibernated", WARN_HIBERNATED),
    (b"hibr", "hibernated", WARN_HIBERNATED),
    (b"WAKE", "resumed", WARN_RESUMED),
    (b"wake", "resumed", WARN_RESUMED),
    (b"\0\0\0\0", None, None),
])
@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_hibernation_from_hiberfil_header(tmp_path: Path, signature: bytes, state: str | None,
                                          warning: str | None) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    write_hiberfil(volume, tmp_path / "mnt", signature)
    info = _probe(volume)
    assert info.hibernated == state
    assert info.warnings == ((warning,) if warning else ())


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_ntfs3g_agrees_that_hibr_volumes_are_hibernated(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    write_hiberfil(volume, tmp_path / "mnt", b"HIBR")
    with pytest.raises(VolumeStateError, match=r"(?i)hibernat"), ntfs3g.mount(
            volume.image, volume.offset, tmp_path / "mnt", True, size=volume.size):
        pass
    assert not (tmp_path / "mnt").is_mount()


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_dirty_volume_warns(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    set_ntfs_dirty(volume)
    info = _probe(volume)
    assert info.dirty and info.warnings == (WARN_DIRTY,)


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_bitlocker_volume_is_captured_whole(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    mark_bitlocker(volume)
    info = _probe(volume)
    assert (info.fs_type, info.bitlocker) == ("bitlocker", True)
    assert info.used == [(0, volume.size)] and info.used_bytes == volume.size
    assert info.warnings == (WARN_BITLOCKER,)


def test_fat32_volume(tmp_path: Path) -> None:
    volume = make_fat(tmp_path / "disk.img", 300 * MiB, 32, sectors_per_cluster=8,
                      label="SYSTEM")
    info = _probe(volume)
    assert (info.fs_type, info.label, info.cluster_size) == ("fat32", "SYSTEM", 4096)
    assert 0 < info.used_bytes < volume.size and info.warnings == ()


def test_blank_volume_is_unknown_and_whole(tmp_path: Path) -> None:
    image = blank_image(tmp_path / "disk.img", 4 * MiB)
    with BlockDevice.open(image) as device:
        info = probe_volume(device, MiB, 2 * MiB)
    assert info.fs_type == "unknown" and info.used == [(0, 2 * MiB)]


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_damaged_ntfs_is_captured_whole_with_a_warning(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    with volume.open(writable=True) as device:
        reader = NtfsReader(device, volume.offset, volume.size)
        record_at = (volume.offset + reader.boot.mft_lcn * reader.boot.cluster_size
                     + MFT_RECORD_BITMAP * reader.boot.mft_record_size)
        device.write_at(record_at, b"BAAD")
    info = _probe(volume)
    assert info.fs_type == "ntfs" and info.used == [(0, volume.size)]
    assert len(info.warnings) == 1 and "not a valid MFT record" in info.warnings[0]


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_probe_through_a_loop_device(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB, label="LOOP")
    with losetup.loop_device(volume.image, read_only=True) as node, \
            BlockDevice.open(node) as device:
        info = probe_volume(device, volume.offset, volume.size)
    assert (info.fs_type, info.label) == ("ntfs", "LOOP")


@pytest.mark.root("loop devices (mkntfs, ntfs-3g)")
def test_ntfs_larger_than_its_partition_is_captured_whole(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    with volume.open() as device:
        info = probe_volume(device, volume.offset, 32 * MiB)
    assert info.fs_type == "ntfs" and info.used == [(0, 32 * MiB)]
    assert len(info.warnings) == 1 and "partition has only" in info.warnings[0]
