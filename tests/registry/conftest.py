"""Windows-like NTFS volumes for the restore-point tests, made with mkntfs + ntfs-3g and the
VSS test tool, holding the shared fixtures' real hives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import unpack_hive
from tests.vsstool.builder import Snapshot, build_vss_volume

MiB = 1024 * 1024
CONFIG = "Windows/System32/config"
POINT_TIME = datetime(2024, 3, 1, 9, 30, 0, tzinfo=UTC)
LATER_TIME = datetime(2024, 4, 2, 10, 0, 0, tzinfo=UTC)

VolumeFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def hives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The shared fixture hives by file name, decompressed once."""
    folder = tmp_path_factory.mktemp("hives")
    names = ["SYSTEM.xz", "SYSTEM_B.xz", "SYSTEM_B.LOG1.xz", "SYSTEM_B.LOG2.xz", "SAM.xz",
             "SYSTEM_2.xz", "corrupted_system_hive.xz", "corrupt_sub_key_list.hiv",
             "100_sub_keys.hiv"]
    return {name.removesuffix(".xz"): unpack_hive(name, folder).read_bytes() for name in names}


@pytest.fixture
def make_volume(tmp_path: Path) -> VolumeFactory:
    """make_volume(current, snapshots=(), size=96 MiB) -> volume image path."""
    counter = iter(range(100))

    def factory(current: dict[str, bytes | None],
                snapshots: tuple[Snapshot, ...] | list[Snapshot] = (),
                size: int = 96 * MiB) -> Path:
        number = next(counter)
        work = tmp_path / f"build-{number}"
        work.mkdir()
        image = tmp_path / f"volume-{number}.img"
        build_vss_volume(image, size, list(snapshots), current, work)
        return image

    return factory


@pytest.fixture
def broken_system_volume(make_volume: VolumeFactory, hives: dict[str, bytes]) -> Path:
    """The issue's scenario: the current SYSTEM is corrupt and sits next to current logs;
    the shadow copy (System Restore point) holds a good SYSTEM; SAM is fine in both."""
    point = Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM"],
                                  f"{CONFIG}/SAM": hives["SAM"]})
    current: dict[str, bytes | None] = {
        f"{CONFIG}/SYSTEM": hives["corrupted_system_hive"],
        f"{CONFIG}/SYSTEM.LOG1": hives["SYSTEM_B.LOG1"],
        f"{CONFIG}/SYSTEM.LOG2": b"",
    }
    return make_volume(current, [point])
