"""Restore points from every source, hive checks on the shared real hives, diff, and
finding the Windows volume inside a whole disk."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recovery.engine.table import write_table
from recovery.errors import SourceError
from recovery.model.layout import PartitionTable, TablePartition
from recovery.registry.hives import check_hive, system_health
from recovery.registry.inspect import diff_point, restore_points, show_point
from recovery.registry.points import list_points
from recovery.registry.volume import locate_volume, open_volume
from tests.conftest import unpack_hive
from tests.fsbuild import raw_fixture_volume
from tests.registry.conftest import CONFIG, LATER_TIME, POINT_TIME, VolumeFactory
from tests.vsstool.builder import Snapshot
from tests.vsstool.vssformat import filetime

MiB = 1024 * 1024
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


@pytest.mark.parametrize(("name", "status"), [
    ("SYSTEM.xz", "ok"), ("SYSTEM_2.xz", "dirty"), ("SYSTEM_WIN_10_1709.xz", "dirty"),
    ("corrupted_system_hive.xz", "corrupt"), ("corrupt_sub_key_list.hiv", "corrupt"),
    ("100_sub_keys.hiv", "ok"), ("BCD.xz", "ok"), ("SECURITY.xz", "dirty")])
def test_hive_checks_on_real_hives(tmp_path: Path, name: str, status: str) -> None:
    assert check_hive(unpack_hive(name, tmp_path)).status == status


def test_dirty_hive_with_its_logs_needs_replay(tmp_path: Path) -> None:
    for name in ("SYSTEM_B.xz", "SYSTEM_B.LOG1.xz", "SYSTEM_B.LOG2.xz"):
        unpack_hive(name, tmp_path)
    check = check_hive(tmp_path / "SYSTEM_B")
    assert check.status == "needs-log-replay"
    assert (check.primary_sequence, check.secondary_sequence) == (1622, 1621)
    assert check.logs == ("SYSTEM_B.LOG1", "SYSTEM_B.LOG2")


def test_bad_header_checksum_and_empty_file(tmp_path: Path) -> None:
    hive = unpack_hive("100_sub_keys.hiv", tmp_path)
    data = bytearray(hive.read_bytes())
    data[508] ^= 0xFF
    hive.write_bytes(bytes(data))
    assert "checksum" in (check_hive(hive).problem or "")
    empty = tmp_path / "EMPTY"
    empty.write_bytes(b"")
    assert check_hive(empty).status == "empty"


def test_system_health_names_the_current_control_set(tmp_path: Path) -> None:
    health = system_health(unpack_hive("SYSTEM.xz", tmp_path))
    assert health.check.usable and health.current_control_set == 1
    broken = system_health(unpack_hive("corrupted_system_hive.xz", tmp_path))
    assert not broken.check.usable and broken.current_control_set is None


def rp_log(description: str, created: datetime) -> bytes:
    text = description.encode("utf-16-le").ljust(0x200, b"\0")
    return struct.pack("<IIQ", 0, 12, 5) + text + struct.pack("<Q", filetime(created))


def test_every_source_newest_first(make_volume: VolumeFactory, hives: dict[str, bytes]) -> None:
    xp_time = datetime(2008, 5, 6, 7, 8, 9, tzinfo=UTC)
    rp = "System Volume Information/_restore{8D2FC2B9-0D2A-4C49-9D1B-3C5D2E1F0A11}/RP5"
    # RegBack and the XP folder are written before the first shadow copy, so they are on
    # the volume throughout and the stores only hold the SYSTEM changes.
    early: dict[str, bytes | None] = {
        f"{CONFIG}/SYSTEM": hives["SYSTEM"],
        f"{CONFIG}/RegBack/SYSTEM": hives["SYSTEM"], f"{CONFIG}/RegBack/SAM": b"",
        f"{rp}/rp.log": rp_log("Installed Contoso Driver", xp_time),
        f"{rp}/snapshot/_REGISTRY_MACHINE_SYSTEM": hives["SYSTEM"],
        f"{rp}/snapshot/_REGISTRY_MACHINE_SAM": hives["SAM"]}
    image = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM_2"]}, [
        Snapshot(POINT_TIME, early),
        Snapshot(LATER_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM_B"]})],
        size=128 * MiB)
    document = restore_points(image).to_dict()
    points = document["points"]
    assert isinstance(points, list)
    summary = [(p["id"], p["source"], p["description"], p["hives"]) for p in points]
    # RegBack's time is its files' modification time: today, so it comes first.
    assert summary == [
        ("regback", "regback", None, {"SYSTEM": "ok", "SAM": "empty"}),
        ("vss-2", "vss", None, {"SYSTEM": "dirty"}),
        ("vss-1", "vss", None, {"SYSTEM": "ok"}),
        ("xp-RP5", "xp", "Installed Contoso Driver", {"SYSTEM": "ok", "SAM": "ok"})]
    assert [p["created"] for p in points[1:]] == [
        "2024-04-02T10:00:00Z", "2024-03-01T09:30:00Z", "2008-05-06T07:08:09Z"]


def test_show_and_diff_report_what_changed(make_volume: VolumeFactory,
                                           hives: dict[str, bytes]) -> None:
    image = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM_B"]},
                        [Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM_2"]})])
    report = show_point(image, "vss-1")
    assert report.health is not None and report.health.check.status == "dirty"
    counts = report.diffs["SYSTEM"].counts
    assert counts["ControlSet001"]["added"] > 0
    services = diff_point(image, "vss-1", "system", key="ControlSet001\\Services")
    assert services.changes and all(c.path.lower().startswith("\\controlset001\\services")
                                    for c in services.changes)
    assert set(services.services_added) <= {c.path.split("\\")[3] for c in services.changes}


def test_real_shadow_copies_made_by_windows(fixtures_dir: Path, tmp_path: Path) -> None:
    """The shared fixture's two stores were written by Windows itself."""
    volume = raw_fixture_volume(fixtures_dir / "volumes" / "ntfs-vss-2stores.qcow2",
                                tmp_path / "vss.raw")
    found = locate_volume(volume.image)
    with open_volume(found, require_windows=False) as opened:
        points = list_points(opened, tmp_path / "staging").points
    assert [(p.id, p.created.isoformat(timespec="seconds"), p.hives) for p in points] == [
        ("vss-2", "2013-12-03T06:37:48+00:00", {}), ("vss-1", "2013-12-03T06:35:09+00:00", {})]
    assert points[1].detail["store_id"] == "600f0b69-5bdf-11e3-9d6c-005056c00008"


def test_windows_volume_found_inside_a_whole_disk(make_volume: VolumeFactory,
                                                  hives: dict[str, bytes],
                                                  tmp_path: Path) -> None:
    volume = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM"]}, size=48 * MiB)
    disk = tmp_path / "disk.img"
    size = volume.stat().st_size
    with open(disk, "wb") as handle:
        handle.truncate(2 * size + 4 * MiB)
    table = PartitionTable("gpt", 512, disk.stat().st_size, "", (
        TablePartition(1, MiB, size, BASIC_DATA, name="data"),
        TablePartition(2, MiB + size, size, BASIC_DATA, name="windows")))
    write_table(disk, table)
    with open(disk, "r+b") as handle:
        handle.seek(MiB + size)
        handle.write(volume.read_bytes())
    found = locate_volume(disk)
    assert (found.partition, found.offset, found.size) == (2, MiB + size, size)
    assert locate_volume(disk, 2) == found
    with pytest.raises(SourceError, match="no partition 7"):
        locate_volume(disk, 7)
    assert restore_points(disk, 2).listing.points == []
