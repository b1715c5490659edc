"""Roll back a corrupt SYSTEM hive to a shadow copy's, check it on the volume, undo it."""

from __future__ import annotations

from pathlib import Path

import blake3
import pyfsntfs
import pytest
import yaml

from recovery.engine.table import write_table
from recovery.errors import NotConfirmedError
from recovery.events import Event, PhaseStarted, Progress
from recovery.model.layout import PartitionTable, TablePartition
from recovery.registry.inspect import diff_point, restore_points
from recovery.registry.rollback import RollbackRequest, UndoRequest, history, rollback, undo
from recovery.registry.undo import BLOCK
from recovery.sys import ntfs3g
from tests.conftest import unpack_hive
from tests.registry.conftest import CONFIG, POINT_TIME, VolumeFactory
from tests.vsstool.builder import Snapshot

MiB = 1024 * 1024
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


def read_volume_file(image: Path, path: str) -> bytes | None:
    volume = pyfsntfs.volume()
    volume.open(str(image))
    try:
        entry = volume.get_file_entry_by_path("\\" + path.replace("/", "\\"))
        if entry is None:
            return None
        data: bytes = entry.read_buffer(entry.size) if entry.size else b""
        return data
    finally:
        volume.close()


def digest(data: bytes | None) -> str | None:
    return None if data is None else blake3.blake3(data).hexdigest()


def test_rollback_replaces_corrupt_system_and_undo_restores_it(
        broken_system_volume: Path, hives: dict[str, bytes]) -> None:
    image = broken_system_volume
    listing = restore_points(image).listing
    assert [p.id for p in listing.points] == ["vss-1"]
    point = listing.points[0]
    assert point.created == POINT_TIME
    assert point.hives["SYSTEM"].status == "ok" and point.hives["SAM"].status == "ok"

    diff = diff_point(image, "vss-1", "SYSTEM", key="Select")
    assert diff.problems and "current" in diff.problems[0]
    assert [(c.path, c.change) for c in diff.changes] == [("\\Select", "removed")]

    with pytest.raises(NotConfirmedError):
        rollback(RollbackRequest(image, "vss-1", hives=("SYSTEM",)))
    assert read_volume_file(image, f"{CONFIG}/SYSTEM") == hives["corrupted_system_hive"]

    summary = rollback(RollbackRequest(image, "vss-1", hives=("SYSTEM",), confirmed=True))
    assert summary.verified
    assert digest(read_volume_file(image, f"{CONFIG}/SYSTEM")) == digest(hives["SYSTEM"])
    # The point had no logs: the current logs must not stay next to the restored hive.
    assert read_volume_file(image, f"{CONFIG}/SYSTEM.LOG1") == b""
    assert read_volume_file(image, f"{CONFIG}/SYSTEM.LOG2") == b""
    assert read_volume_file(image, f"{CONFIG}/SAM") == hives["SAM"]  # not asked for
    assert ntfs3g.ntfsfix_check(image).ok

    record_dir = f"System Volume Information/recovery-undo/{summary.record}"
    manifest = yaml.safe_load(read_volume_file(image, f"{record_dir}/manifest.yaml") or b"")
    assert manifest["state"] == "applied" and manifest["point"]["id"] == "vss-1"
    saved = {f["path"]: f for f in manifest["files"]}
    assert saved[f"{CONFIG}/SYSTEM"]["blake3"] == digest(hives["corrupted_system_hive"])
    assert saved[f"{CONFIG}/SYSTEM.LOG1"]["blake3"] == digest(hives["SYSTEM_B.LOG1"])
    # Every shadow copy's hives were exported into the record before the first write.
    exported = read_volume_file(image, f"{record_dir}/shadows/vss-1/SYSTEM")
    assert digest(exported) == manifest["exports"]["shadows/vss-1/SYSTEM"] == digest(
        hives["SYSTEM"])

    done = undo(UndoRequest(image, confirmed=True))
    assert done.record == summary.record and done.verified
    assert read_volume_file(image, f"{CONFIG}/SYSTEM") == hives["corrupted_system_hive"]
    assert read_volume_file(image, f"{CONFIG}/SYSTEM.LOG1") == hives["SYSTEM_B.LOG1"]
    assert read_volume_file(image, f"{CONFIG}/SYSTEM.LOG2") == b""
    assert ntfs3g.ntfsfix_check(image).ok
    assert [(r.id, r.state) for r in history(image)] == [(summary.record, "used")]

    # Writing invalidated the shadow copy; the point now comes from the record's export.
    listed = restore_points(image).listing.points
    assert [(p.id, p.detail.get("saved_in_undo_record")) for p in listed] == [
        ("vss-1", summary.record)]
    assert listed[0].hives["SYSTEM"].status == "ok"
    # A second rollback after the undo works, from the hives the record kept.
    again = rollback(RollbackRequest(image, "vss-1", hives=("SYSTEM",), confirmed=True))
    assert digest(read_volume_file(image, f"{CONFIG}/SYSTEM")) == digest(hives["SYSTEM"])
    assert [r.state for r in history(image)] == ["applied", "used"]
    assert again.record != summary.record


def test_point_hive_travels_with_its_own_logs(make_volume: VolumeFactory,
                                              hives: dict[str, bytes]) -> None:
    point = Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM_B"],
                                  f"{CONFIG}/SYSTEM.LOG1": hives["SYSTEM_B.LOG1"],
                                  f"{CONFIG}/SYSTEM.LOG2": hives["SYSTEM_B.LOG2"]})
    image = make_volume({f"{CONFIG}/SYSTEM": hives["SYSTEM"],
                         f"{CONFIG}/SYSTEM.LOG1": b"current log that must go",
                         f"{CONFIG}/SYSTEM.LOG2": None}, [point],
                        size=128 * 1024 * 1024)
    listed = restore_points(image).listing.points[0]
    assert listed.hives["SYSTEM"].status == "needs-log-replay"
    assert listed.hives["SYSTEM"].logs == ("SYSTEM.LOG1", "SYSTEM.LOG2")
    rollback(RollbackRequest(image, "vss-1", confirmed=True))
    for name in ("SYSTEM", "SYSTEM.LOG1", "SYSTEM.LOG2"):
        assert digest(read_volume_file(image, f"{CONFIG}/{name}")) == digest(
            hives[name.replace("SYSTEM", "SYSTEM_B")])
    undo(UndoRequest(image, confirmed=True))
    assert read_volume_file(image, f"{CONFIG}/SYSTEM.LOG1") == b"current log that must go"
    assert read_volume_file(image, f"{CONFIG}/SYSTEM.LOG2") is None
    assert read_volume_file(image, f"{CONFIG}/SYSTEM") == hives["SYSTEM"]


def test_user_hive_rollback_keeps_windows_spelling(make_volume: VolumeFactory,
                                                   hives: dict[str, bytes],
                                                   tmp_path: Path) -> None:
    """A user hive is found case-insensitively and written back under the name the volume
    already uses, so no second 'NTUSER.DAT' appears next to 'ntuser.dat'."""
    ntuser = unpack_hive("NTUSER.DAT.xz", tmp_path).read_bytes()
    point = Snapshot(POINT_TIME, {f"{CONFIG}/SYSTEM": hives["SYSTEM"],
                                  "Users/alice/ntuser.dat": ntuser})
    image = make_volume({"Users/alice/ntuser.dat": hives["100_sub_keys.hiv"],
                         "Users/alice/ntuser.dat.LOG1": b"old log"}, [point])
    plain = restore_points(image).listing.points[0]
    assert set(plain.hives) == {"SYSTEM"}
    listed = restore_points(image, user_hives=True).listing.points[0]
    assert listed.hives["USER_alice"].status == "ok"

    copies = tmp_path / "undo-copies"
    copies.mkdir()
    summary = rollback(RollbackRequest(image, "vss-1", hives=("user_alice",), confirmed=True,
                                       undo_copy=copies))
    assert summary.replaced == ["Users/alice/ntuser.dat", "Users/alice/ntuser.dat.LOG1",
                                "Users/alice/NTUSER.DAT.LOG2"]
    assert read_volume_file(image, "Users/alice/NTUSER.DAT") == ntuser
    assert read_volume_file(image, "Users/alice/ntuser.dat.LOG1") == b""
    saved = copies / summary.record / "current" / "USER_alice"
    assert saved.read_bytes() == hives["100_sub_keys.hiv"]
    assert (copies / summary.record / "manifest.yaml").is_file()
    undo(UndoRequest(image, confirmed=True))
    assert read_volume_file(image, "Users/alice/ntuser.dat") == hives["100_sub_keys.hiv"]
    assert read_volume_file(image, "Users/alice/ntuser.dat.LOG1") == b"old log"


def test_rollback_on_a_partition_of_a_whole_disk(broken_system_volume: Path,
                                                 hives: dict[str, bytes],
                                                 tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    size = broken_system_volume.stat().st_size
    with open(disk, "wb") as handle:
        handle.truncate(size + 4 * MiB)
    write_table(disk, PartitionTable("gpt", 512, disk.stat().st_size, "", (
        TablePartition(1, 2 * MiB, size, BASIC_DATA, name="windows"),)))
    with open(disk, "r+b") as handle:
        handle.seek(2 * MiB)
        handle.write(broken_system_volume.read_bytes())
    summary = rollback(RollbackRequest(disk, "vss-1", hives=("SYSTEM",), confirmed=True))
    assert summary.verified
    with open(disk, "rb") as handle:
        handle.seek(2 * MiB)
        volume = tmp_path / "volume-after.img"
        volume.write_bytes(handle.read(size))
    assert digest(read_volume_file(volume, f"{CONFIG}/SYSTEM")) == digest(hives["SYSTEM"])
    assert ntfs3g.ntfsfix_check(disk, 2 * MiB, size).ok


def test_rollback_and_undo_progress_moves_within_each_hive(
        broken_system_volume: Path) -> None:
    """What the progress screen is fed (issue 14, seen on tty1: "0 B of 12.0 MB, elapsed
    0:30", and "Preparing…" for 20 s before): each phase that copies files has its total in
    bytes and reports every block written, not each whole hive once it is done; reading
    the points' hives first and reading everything back at the end say what they do."""
    image = broken_system_volume
    seen: list[Event] = []
    rollback(RollbackRequest(image, "vss-1", hives=("SYSTEM",), confirmed=True), seen.append)
    undo(UndoRequest(image, confirmed=True), seen.append)
    started = [e for e in seen if isinstance(e, PhaseStarted)]
    assert [e.phase for e in started] == ["plan", "undo-record", "rollback", "check", "undo",
                                          "check"]
    for event in started:
        if event.phase in ("plan", "check"):  # no byte count: its words say what it does
            assert event.description.startswith("Reading the "), event
            continue
        done = [e.done_bytes for e in seen
                if isinstance(e, Progress) and e.phase == event.phase]
        assert event.total_bytes > BLOCK, event  # a whole hive or more
        assert done and done[0] <= BLOCK, (event, done[:3])  # the first block, not a hive
        assert done[-1] == event.total_bytes, (event, done[-1])
