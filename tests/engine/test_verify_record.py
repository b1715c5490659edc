"""What the engine tells shells beyond bytes: the chunk tally of a running capture, and the
recorded outcome of an image's last full check (images/NAME/verified.yaml)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.verify import verify
from recovery.events import ChunkTally, Event, Notice, Progress
from recovery.store.objects import ChunkStore
from recovery.store.verified import VERIFIED_FILE

ROOT = Path(__file__).resolve().parents[2]


def _copy_store(store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    (copy / "images" / "base" / VERIFIED_FILE).unlink(missing_ok=True)
    return copy


def _tallies(events: list[Event]) -> list[ChunkTally]:
    return [e.chunks for e in events if isinstance(e, Progress) and e.chunks is not None]


def test_capture_progress_carries_new_and_reused_chunk_counts(small_disk: DemoDisk,
                                                              tmp_path: Path) -> None:
    store = tmp_path / "store"
    first_events: list[Event] = []
    first = capture(CaptureRequest(small_disk.path, store, name="a"),
                    first_events.append).stats
    tallies = _tallies(first_events)
    assert tallies, "no Progress event carried a chunk tally"
    assert [t.new for t in tallies] == sorted(t.new for t in tallies)  # counts only grow
    assert tallies[-1] == ChunkTally(first.chunks_new, first.chunks_reused, first.chunks_zero)
    assert first.chunks_new > 0

    second_events: list[Event] = []
    second = capture(CaptureRequest(small_disk.path, store, name="b", read_all=True),
                     second_events.append).stats
    last = _tallies(second_events)[-1]
    assert last.new == 0 and last.reused == second.chunks_reused > 0


def test_verify_records_the_outcome_beside_the_untouched_manifest(small_store: Path,
                                                                  tmp_path: Path) -> None:
    store = _copy_store(small_store, tmp_path)
    folder = store / "images" / "base"
    manifest_before = (folder / "manifest.yaml").read_bytes()
    assert ChunkStore.open(store).list_images()[0].verified is None

    summary = verify(store, "base")

    info = ChunkStore.open(store).list_images()[0]
    assert summary.ok and info.verified is not None and info.verified.ok
    assert info.verified.chunks_checked == summary.chunks_checked > 0
    assert info.verified.problems == 0 and info.verified.checked.endswith("Z")
    assert (folder / "manifest.yaml").read_bytes() == manifest_before
    assert not list(folder.glob(".*.tmp"))  # written through a temp file, none left over
    listed = subprocess.run([sys.executable, "-m", "recovery", "images", "--store", str(store),
                             "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    image = json.loads(listed.stdout)["images"][0]
    assert image["verified"]["ok"] is True
    assert image["verified"]["tool_version"] == info.verified.tool_version


def test_failed_verify_is_recorded_as_failed(small_store: Path, tmp_path: Path) -> None:
    store = _copy_store(small_store, tmp_path)
    victim = max((p for p in (store / "chunks").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))

    summary = verify(store, "base")

    record = ChunkStore.open(store).list_images()[0].verified
    assert not summary.ok and record is not None
    assert not record.ok and record.problems == len(summary.problems) == 1
    assert "FAILED" in record.describe()


def test_unwritable_record_is_a_notice_not_a_failed_verify(small_store: Path,
                                                            tmp_path: Path) -> None:
    store = _copy_store(small_store, tmp_path)
    # A directory where the record goes: the rename onto it fails like a read-only store.
    (store / "images" / "base" / VERIFIED_FILE).mkdir()
    events: list[Event] = []
    summary = verify(store, "base", events=events.append)
    assert summary.ok
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("not recorded" in message for message in notices), notices
    assert ChunkStore.open(store).list_images()[0].verified is None
