"""Open a captured PC without restoring it: list, extract (every file compared by hash with
what was written), rename what FAT cannot hold, survive a damaged chunk, and never write to
the store (it sits on a read-only mount in these tests)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from recovery.engine.explore import OpenedImage, browser_for, list_files, open_image
from recovery.engine.extract import ExtractRequest, extract
from recovery.errors import DestinationError, ImagePathNotFoundError
from recovery.events import Event, PhaseStarted, Progress
from recovery.fs.browse import FileEntry
from recovery.model.manifest import ByteRange
from recovery.store.imageview import DamagedChunkError, ImageView, ReadAhead, open_view
from recovery.store.objects import ChunkStore
from recovery.ui.cli import main
from tests.explore.conftest import (
    MTIME_NS,
    STREAM,
    CapturedPc,
    damaged_copy,
    exfat_folder,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_listing_a_folder(ro_store: Path, pc: CapturedPc) -> None:
    listing = list_files(ro_store, "first", None, "/Users/Bob/Documents")
    assert listing.partition == 2
    by_name = {e.name: e for e in listing.entries}
    assert set(by_name) == {Path(p).name for p in pc.ntfs_files
                            if p.startswith("Users/Bob/Documents/")}
    report = by_name["report.docx"]
    assert report.size == len(pc.ntfs_files["Users/Bob/Documents/report.docx"])
    assert report.modified_ns == MTIME_NS
    assert report.streams == (("Zone.Identifier", len(STREAM)),)
    root = {e.name for e in list_files(ro_store, "first", None, "/").entries}
    assert root == {"Compressed", "Deep", "Many", "Users", "empty.txt"}  # no $MFT & co
    compressed = list_files(ro_store, "first", None, "/Compressed/big.log").entry
    assert "compressed" in compressed.attributes
    many = list_files(ro_store, "first", None, "/Many").entries
    assert len(many) == 600


def test_missing_path_is_named(ro_store: Path) -> None:
    with pytest.raises(ImagePathNotFoundError, match="/Users/Nobody"):
        list_files(ro_store, "first", None, "/Users/Nobody")


def test_extract_everything_matches_the_originals(ro_store: Path, pc: CapturedPc,
                                                  tmp_path: Path) -> None:
    events: list[Event] = []
    out = tmp_path / "out"
    out.mkdir()
    summary = extract(ExtractRequest(ro_store, "first", ("/",), out), events.append)
    assert summary.ok and not summary.renamed  # ext4 holds every NTFS name
    assert summary.files == len(pc.ntfs_files) + 1  # + the sparse file
    for name, data in pc.ntfs_files.items():
        written = out / name
        assert sha(written.read_bytes()) == sha(data), name
        assert written.stat().st_mtime_ns == MTIME_NS, name
    assert os.getxattr(out / "Users/Bob/Documents/report.docx", "user.Zone.Identifier") \
        == STREAM
    sparse = out / pc.sparse
    assert sparse.stat().st_size == 40 * 1024 * 1024 + 20
    assert sparse.stat().st_blocks * 512 < 1024 * 1024  # still sparse
    with open(sparse, "rb") as handle:
        handle.seek(40 * 1024 * 1024)
        assert handle.read() == b"end of a sparse file"
    assert (out / "Deep").stat().st_mtime_ns == MTIME_NS  # folders keep their times too
    assert not list(out.rglob(".recovery-partial-*"))
    started = [e for e in events if isinstance(e, PhaseStarted)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert started[0].total_bytes == summary.bytes
    assert progress[-1].done_bytes == progress[-1].total_bytes == summary.bytes


def test_extract_to_exfat_renames_and_reports(ro_store: Path, pc: CapturedPc,
                                            tmp_path: Path) -> None:
    with exfat_folder(tmp_path / "stick.img", tmp_path / "stick") as stick:
        summary = extract(ExtractRequest(ro_store, "first", ("/Users/Bob/Documents",),
                                         stick), lambda e: None)
        docs = stick / "Documents"
        renamed = {r["path"]: Path(r["written_as"]).name for r in summary.renamed}
        assert renamed == {"/Users/Bob/Documents/colon:name.txt": "colon_name.txt",
                           "/Users/Bob/Documents/trailing dot.": "trailing dot",
                           "/Users/Bob/Documents/same.txt": "same (2).txt"}
        assert (docs / "colon_name.txt").read_bytes() == b"a colon in the name\n"
        assert {(docs / "Same.txt").read_bytes(), (docs / "same (2).txt").read_bytes()} == {
            b"upper case\n", b"lower case\n"}
        # exFAT has no extended attributes: the stream is a file beside its file.
        assert [Path(s["written_as"]).name for s in summary.streams_as_files] == [
            "report.docx_Zone.Identifier"]
        assert (docs / "report.docx_Zone.Identifier").read_bytes() == STREAM
        unicode_name = "Ünïcödé 日本語 📷.txt"
        assert (docs / unicode_name).read_bytes() == \
            pc.ntfs_files[f"Users/Bob/Documents/{unicode_name}"]


def test_esp_is_listed_and_extracted(ro_store: Path, pc: CapturedPc, tmp_path: Path) -> None:
    listing = list_files(ro_store, "first", 1, "/efi/microsoft/boot")
    assert listing.entry.path == "/EFI/Microsoft/Boot"  # as the directory spells it
    assert {e.name: e.size for e in listing.entries} == {
        "BCD": len(pc.esp_files["EFI/Microsoft/Boot/BCD"]),
        "bootmgfw.efi": len(pc.esp_files["EFI/Microsoft/Boot/bootmgfw.efi"])}
    out = tmp_path / "esp"
    out.mkdir()
    summary = extract(ExtractRequest(ro_store, "first", ("/EFI",), out, 1), lambda e: None)
    assert summary.ok and summary.files == len(pc.esp_files)
    for name, data in pc.esp_files.items():
        assert sha((out / name).read_bytes()) == sha(data), name


def test_damaged_chunk_fails_only_the_files_using_it(pc: CapturedPc, tmp_path: Path) -> None:
    store = ChunkStore.open(pc.store)
    view = open_view(store, "first", 2)
    with open_image(pc.store, "first", 2) as opened:
        (offset, _), *_ = opened.browser.ranges("/Users/Bob/Pictures/holiday.jpg")
    digest = view.stored_chunk(view.chunk_of(offset))
    assert digest is not None
    broken = damaged_copy(pc.store, tmp_path / "broken", digest)
    out = tmp_path / "out"
    out.mkdir()
    summary = extract(ExtractRequest(broken, "first", ("/Users/Bob",), out), lambda e: None)
    failed = [f["path"] for f in summary.failed]
    assert "/Users/Bob/Pictures/holiday.jpg" in failed
    problem = summary.failed[0]["problem"]
    assert "holiday.jpg" in problem and "damaged chunk" in problem
    assert not (out / "Bob/Pictures/holiday.jpg").exists()  # never wrong data
    assert not list(out.rglob(".recovery-partial-*"))
    docs = out / "Bob/Documents"
    for name, data in pc.ntfs_files.items():
        if name.startswith("Users/Bob/") and f"/{name}" not in failed:
            assert (out / name.removeprefix("Users/")).read_bytes() == data, name
    assert docs.is_dir()


def test_destination_checked_before_writing(ro_store: Path, tmp_path: Path) -> None:
    with pytest.raises(DestinationError, match="not a folder"):
        extract(ExtractRequest(ro_store, "first", ("/Users",), tmp_path / "nope"),
                lambda e: None)
    with pytest.raises(DestinationError, match="read-only"):
        extract(ExtractRequest(ro_store, "first", ("/Users",), ro_store), lambda e: None)


def test_cli_files_and_extract(ro_store: Path, pc: CapturedPc, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["files", "--store", str(ro_store), "first", "--partition", "2",
                 "/Users/Bob", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in document["entries"]} == {"Documents", "Pictures",
                                                        "sparse.vhd"}
    out = tmp_path / "cli"
    out.mkdir()
    assert main(["extract", "--store", str(ro_store), "first", "/Deep", "/empty.txt",
                 "--to", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] and document["files"] == 2
    assert main(["files", "--store", str(ro_store), "first", "/missing"]) == 25
    assert "/missing" in capsys.readouterr().err


def test_unreadable_bytes_of_a_rescue_capture_are_refused(pc: CapturedPc,
                                                          tmp_path: Path) -> None:
    """Bytes a rescue capture could not read are zeros in the store: a file using them
    fails, naming the range, instead of coming out with zeros in it."""
    store = ChunkStore.open(pc.store)
    manifest, index = store.load_image("first")
    with open_image(pc.store, "first", 2) as opened:
        (offset, _), *_ = opened.browser.ranges("/Users/Bob/Pictures/holiday.jpg")
    part = dataclasses.replace(manifest.partition(2),
                               unreadable=(ByteRange(offset + 4096, 512),))
    entry = index.partition(2)
    assert entry is not None
    view = ImageView(store, "first", manifest, part, entry.chunks)
    opened = OpenedImage(view, browser_for(view))
    try:
        with pytest.raises(OSError):
            b"".join(opened.browser.read("/Users/Bob/Pictures/holiday.jpg"))
        damaged = opened.damaged_in("/Users/Bob/Pictures/holiday.jpg")
        assert damaged and "could not be read from the source disk" in damaged[0].problem
        report = pc.ntfs_files["Users/Bob/Documents/report.docx"]
        assert b"".join(opened.browser.read("/Users/Bob/Documents/report.docx")) == report
    finally:
        opened.close()


def test_read_ahead_decodes_each_chunk_once_and_leaves_damage_to_the_read(
        pc: CapturedPc, tmp_path: Path) -> None:
    """Chunks decoded ahead on other threads are what the reads then get (no chunk decoded
    twice); a damaged chunk met ahead is not reported until a read needs it, and then it is."""
    store = ChunkStore.open(pc.store)
    view = open_view(store, "first", 2)
    stored = [n for n in range(view.size // view.chunk_size) if view.stored_chunk(n)][:6]
    readahead = ReadAhead(view)
    try:
        readahead.expect(stored)
        for number in stored:
            assert view.read_at(number * view.chunk_size, 4096)
    finally:
        readahead.close()
    assert view.bytes_from_store == sum(
        min(view.chunk_size, view.size - n * view.chunk_size) for n in stored)
    digest = view.stored_chunk(stored[-1])
    assert digest is not None
    broken = ChunkStore.open(damaged_copy(pc.store, tmp_path / "broken", digest))
    damaged = open_view(broken, "first", 2)
    readahead = ReadAhead(damaged)
    readahead.expect(stored)
    readahead.close()
    assert damaged.damaged == {}
    with pytest.raises(DamagedChunkError):
        damaged.read_at(stored[-1] * damaged.chunk_size, 4096)
    assert set(damaged.damaged) == {stored[-1]}


def test_a_listing_is_kept_for_the_next_run_and_a_bad_kept_file_is_ignored(
        ro_store: Path, pc: CapturedPc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second process listing the same folder reads no MFT record from the chunks; what
    it gets is what the first listing read. A kept file that is damaged is read again."""
    monkeypatch.setenv("RECOVERY_LISTING_CACHE", str(tmp_path / "kept"))

    def listing() -> tuple[list[FileEntry], int]:
        with open_image(ro_store, "first", 2) as opened:
            before = opened.view.bytes_from_store
            entries = opened.list_dir("/Many")
            return entries, opened.view.bytes_from_store - before

    first, decoded = listing()
    assert len(first) == 600 and decoded > 0
    again, decoded = listing()
    assert again == first and decoded == 0
    for kept in (tmp_path / "kept").glob("*/*.json"):
        kept.write_text("{not json")
    damaged, decoded = listing()
    assert damaged == first and decoded > 0
    monkeypatch.setenv("RECOVERY_LISTING_CACHE", "off")
    assert list_files(ro_store, "first", 2, "/Many").entries == first
