"""Every bad input from the issue is refused before anything is written, with an action."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from recovery.errors import (
    HiveError,
    RecoveryError,
    RestorePointNotFoundError,
    SourceError,
    TargetReadOnlyError,
    UndoError,
    UnsupportedLayoutError,
    VolumeStateError,
)
from recovery.registry.inspect import restore_points
from recovery.registry.rollback import RollbackRequest, UndoRequest, rollback, undo
from recovery.sys import losetup, ntfs3g
from tests.fsbuild import BuiltVolume, make_fat, mark_bitlocker, set_ntfs_dirty
from tests.registry.conftest import CONFIG, POINT_TIME, VolumeFactory
from tests.vsstool.builder import Snapshot

MiB = 1024 * 1024


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(image: Path, error: type[RecoveryError], point: str = "vss-1",
            words: str = "") -> RecoveryError:
    """Roll back with --yes; it must raise `error` and leave the image untouched."""
    before = sha(image)
    with pytest.raises(error) as caught:
        rollback(RollbackRequest(image, point, confirmed=True))
    assert sha(image) == before
    assert caught.value.action, "every refusal says what to do"
    assert words.lower() in str(caught.value).lower()
    return caught.value


@pytest.fixture
def good_point_volume(make_volume: VolumeFactory, hives: dict[str, bytes]) -> Path:
    point = Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM"]})
    return make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM_2"]}, [point])


def test_not_ntfs(tmp_path: Path) -> None:
    volume = make_fat(tmp_path / "fat.img", 32 * MiB, 32, offset=0)
    with pytest.raises(UnsupportedLayoutError, match="neither an NTFS volume"):
        restore_points(volume.image)


def test_no_windows_folder(make_volume: VolumeFactory) -> None:
    image = make_volume({"Users/readme.txt": b"no Windows here"})
    with pytest.raises(SourceError, match="no Windows"):
        restore_points(image)


def test_real_vss_fixture_without_windows(fixtures_dir: Path, tmp_path: Path) -> None:
    from tests.fsbuild import raw_fixture_volume

    volume = raw_fixture_volume(fixtures_dir / "volumes" / "ntfs-vss-2stores.qcow2",
                                tmp_path / "vss.raw")
    with pytest.raises(SourceError, match="no Windows"):
        restore_points(volume.image)


def test_bitlocker(good_point_volume: Path) -> None:
    mark_bitlocker(BuiltVolume(good_point_volume, 0, good_point_volume.stat().st_size))
    refused(good_point_volume, VolumeStateError, words="BitLocker")


def test_hibernated(make_volume: VolumeFactory, hives: dict[str, bytes]) -> None:
    point = Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM"]})
    image = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM_2"],
                         "hiberfil.sys": b"HIBR" + bytes(64 * 1024)}, [point])
    error = refused(image, VolumeStateError, words="hibernated")
    assert "Shift" in error.action


def test_dirty(good_point_volume: Path) -> None:
    set_ntfs_dirty(BuiltVolume(good_point_volume, 0, good_point_volume.stat().st_size))
    error = refused(good_point_volume, VolumeStateError, words="dirty")
    assert "chkdsk" in error.action


def test_mounted_elsewhere(good_point_volume: Path, tmp_path: Path) -> None:
    with ntfs3g.mount(good_point_volume, 0, tmp_path / "elsewhere", False):
        refused(good_point_volume, VolumeStateError, words="mounted")


def test_read_only_device(good_point_volume: Path) -> None:
    with losetup.loop_device(good_point_volume, read_only=True) as device:
        refused(device, TargetReadOnlyError)


def test_point_that_does_not_exist(good_point_volume: Path) -> None:
    error = refused(good_point_volume, RestorePointNotFoundError, point="vss-7")
    assert "vss-1" in str(error)


def test_corrupt_point_hive_is_never_offered(make_volume: VolumeFactory,
                                             hives: dict[str, bytes]) -> None:
    point = Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["corrupt_sub_key_list.hiv"]})
    image = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM"]}, [point])
    listed = restore_points(image).listing.points[0]
    assert listed.hives["SYSTEM"].status == "corrupt"
    refused(image, HiveError, words="corrupt")


def test_no_space_for_undo_record(make_volume: VolumeFactory, hives: dict[str, bytes]) -> None:
    # 64 MiB volume: the current SYSTEM, the shadow copy store and 10 MiB of other files
    # leave about 25 MiB free; the undo record needs the point's SYSTEM, the current one
    # and room for the new copy (more than 30 MiB).
    point = Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM"],
                                  "filler.bin": bytes(10 * MiB)})
    image = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM_2"]}, [point], size=64 * MiB)
    refused(image, UndoError, words="free space")


def test_undo_without_any_rollback(good_point_volume: Path) -> None:
    with pytest.raises(UndoError, match="no rollback"):
        undo(UndoRequest(good_point_volume, confirmed=True))


def test_regback_with_zero_byte_files_is_explained(make_volume: VolumeFactory,
                                                   hives: dict[str, bytes]) -> None:
    image = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM"],
                         f"{CONFIG}/RegBack/SYSTEM": b"", f"{CONFIG}/RegBack/SOFTWARE": b""})
    listing = restore_points(image).listing
    assert listing.points == []
    assert any("zero-byte" in note for note in listing.notes)
