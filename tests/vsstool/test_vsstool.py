"""Prove the VSS test tool with libvshadow itself before product code is tested on it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyfsntfs
import pyvshadow

from recovery.sys import ntfs3g
from recovery.sys.run import run_text
from tests.conftest import unpack_hive
from tests.vsstool.builder import Snapshot, build_vss_volume

CONFIG = "Windows/System32/config/SYSTEM"


def _read(volume: pyfsntfs.volume, path: str) -> bytes | None:
    entry = volume.get_file_entry_by_path("\\" + path.replace("/", "\\"))
    if entry is None:
        return None
    data: bytes = entry.read_buffer(entry.size) if entry.size else b""
    return data


def test_two_stores_read_back_with_libvshadow(tmp_path: Path) -> None:
    good = unpack_hive("SYSTEM.xz", tmp_path).read_bytes()
    corrupt = unpack_hive("corrupted_system_hive.xz", tmp_path).read_bytes()
    first = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    second = datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    built = build_vss_volume(
        tmp_path / "volume.img", 96 << 20,
        [Snapshot(first, {CONFIG: good, "note.txt": b"one"}),
         Snapshot(second, {"note.txt": b"two", "added.txt": b"new"})],
        {CONFIG: corrupt, "note.txt": b"three"}, tmp_path)

    info = run_text(["vshadowinfo", str(built.image)])
    assert "Number of stores:\t2" in info
    assert "Jan 02, 2024 03:04:05" in info and "Feb 03, 2024 04:05:06" in info
    assert str(built.store_ids[0]) in info and str(built.shadow_copy_ids[1]) in info

    expected: list[dict[str, bytes | None]] = [
        {CONFIG: good, "note.txt": b"one", "added.txt": None},
        {CONFIG: good, "note.txt": b"two", "added.txt": b"new"}]
    with open(built.image, "rb") as handle:
        shadows = pyvshadow.volume()
        shadows.open_file_object(handle)
        assert shadows.number_of_stores == 2
        for index, files in enumerate(expected):
            store = shadows.get_store(index)
            assert store.creation_time.replace(tzinfo=UTC) == (first, second)[index]
            snapshot = pyfsntfs.volume()
            snapshot.open_file_object(store)
            for path, content in files.items():
                assert _read(snapshot, path) == content, (index, path)
        current = pyfsntfs.volume()
        current.open_file_object(handle)
        assert _read(current, CONFIG) == corrupt
        assert _read(current, "note.txt") == b"three"
    assert all(count > 0 for count in built.changed_blocks)
    assert ntfs3g.ntfsfix_check(built.image).ok
