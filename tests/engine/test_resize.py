"""Restore onto a smaller and a larger disk: Windows shrunk (data placed high, so ntfsresize
must relocate it through the FUSE view) or grown, Recovery moved to the end; each result
checked with ntfsfix -n, ntfsresize --check, a file-tree comparison with the source volume,
the partition identifiers and ntfsclone hashes of the moved volume."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine import imageview
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.chunking import ChunkIO, ChunkSpan
from recovery.engine.filetree import compare_trees, file_tree
from recovery.engine.imageview import PartitionView, ViewSpec, read_back_written
from recovery.engine.placed import all_placed
from recovery.engine.resize import LayoutChoice
from recovery.engine.restore import RestoreRequest, plan_restore, restore
from recovery.engine.table import compare_tables, read_table
from recovery.engine.verify import verify
from recovery.errors import TargetTooSmallError, UsageError, VerificationError
from recovery.model.layout import TablePartition
from recovery.sys import ntfs3g, ntfsresize
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.ui import text
from recovery.units import MiB, align_up
from tests.engine.helpers import place_files_high

SPEC = DiskSpec(size=1200 * MiB, windows_size=640 * MiB, data_bytes=40 * MiB, seed=11)


@pytest.fixture(scope="module")
def resize_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoDisk, Path]:
    base = tmp_path_factory.mktemp("resize")
    disk = build_windows_disk(base / "windows.img", SPEC)
    place_files_high(disk, base / "mnt")
    store = base / "store"
    capture(CaptureRequest(disk.path, store, name="pc"))
    return disk, store


def _store_state(store: Path) -> dict[str, tuple[int, int]]:
    # The store's lock folder (recovery.store locking: a restore takes a shared lock) is
    # bookkeeping, not image data; everything else must stay as it was.
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in store.rglob("*")
            if "locks" not in p.relative_to(store).parts}


def _target(tmp_path: Path, size: int, name: str = "target.img") -> Path:
    path = tmp_path / name
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def _check_resized(disk: DemoDisk, store: Path, target: Path) -> dict[int, TablePartition]:
    plan = plan_restore(RestoreRequest(store, "pc", target, confirmed=True))
    assert plan.layout is not None and not plan.refusals
    with BlockDevice.open(target) as device:
        actual = read_table(device)
        assert compare_tables(plan.layout.table, actual) == []
        new = {p.number: p for p in actual.partitions}
        windows = new[disk.windows.number]
        assert ntfs3g.ntfsfix_check(target, windows.start, windows.size).ok
        with ntfs3g.volume_device(target, windows.start, windows.size) as volume:
            ntfsresize.check(volume)
        with BlockDevice.open(disk.path) as source:
            want = file_tree(DeviceSlice(source, disk.windows.start, disk.windows.size), "src")
        got = file_tree(DeviceSlice(device, windows.start, windows.size), "target")
    assert "/Users/tech/high7.bin" in got and "/Windows" in got
    assert compare_trees(want, got, "Windows") == []
    recovery_part = disk.table.partitions[-1]
    moved = new[recovery_part.number]
    assert moved.guid == recovery_part.guid and moved.size == recovery_part.size
    assert ntfs3g.ntfsclone_image_hash(target, moved.start, moved.size) == \
        ntfs3g.ntfsclone_image_hash(disk.path, recovery_part.start, recovery_part.size)
    summary = verify(store, "pc", target)
    assert summary.ok, summary.problems
    assert summary.methods[disk.windows.number].startswith("file tree")
    return new


def test_shrink_onto_a_smaller_disk(resize_source: tuple[DemoDisk, Path],
                                    tmp_path: Path) -> None:
    disk, store = resize_source
    probe = _target(tmp_path, 64 * MiB, "probe.img")
    minimum = plan_restore(RestoreRequest(store, "pc", probe)).refusals
    assert any(isinstance(r, TargetTooSmallError) for r in minimum)
    size = disk.windows.start + 480 * MiB + 200 * MiB
    target = _target(tmp_path, size)
    before = _store_state(store)
    summary = restore(RestoreRequest(store, "pc", target, confirmed=True))
    assert summary.verified
    assert _store_state(store) == before  # nothing written to the store
    new = _check_resized(disk, store, target)
    assert new[disk.windows.number].size < disk.windows.size
    assert new[disk.table.partitions[-1].number].end <= size


def test_blocks_the_shrink_view_writes_are_read_back_from_the_target(
        resize_source: tuple[DemoDisk, Path], tmp_path: Path) -> None:
    """The view ntfsresize moves data through: writes below the new end land in the target
    and are read back from it; writes above stay in memory, never on the disk."""
    disk, store = resize_source
    target = _target(tmp_path, 64 * MiB)
    spec = ViewSpec(str(store), "pc", disk.windows.number, str(target), MiB, 32 * MiB,
                    disk.windows.size, str(tmp_path / "written"))
    view = PartitionView(spec)
    moved = bytes(range(256)) * 64 * 4  # 64 KiB, as ntfsresize moves clusters down
    view.write("/volume", moved, 8 * MiB, None)
    view.write("/volume", b"partial", 8 * MiB + 70000, None)  # inside a block
    view.write("/volume", b"above the new end", 40 * MiB, None)
    view.destroy("/")
    os.close(view.fd)
    assert view.read("/volume", 17, 40 * MiB, None) == b"above the new end"
    assert target.read_bytes()[MiB + 8 * MiB: MiB + 8 * MiB + len(moved)] == moved
    assert b"above the new end" not in target.read_bytes()
    read_back_written(spec)  # what was written is what the disk holds
    with open(target, "r+b") as handle:  # the disk loses a byte of the moved data
        handle.seek(MiB + 8 * MiB + 70003)
        handle.write(b"X")
    with pytest.raises(VerificationError) as refused:
        read_back_written(spec)
    first = MiB + 8 * MiB + 17 * 4096  # the block holding the lost byte
    assert refused.value.problems == [f"bytes {first}-{first + 4095} of the target differ "
                                      "from what ntfsresize wrote"]


def _holds_data(path: Path, offset: int, length: int) -> bool:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return bool(handle.read(length).strip(b"\0"))


def test_the_chunk_straddling_the_new_end_is_read_back(
        resize_source: tuple[DemoDisk, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the part of that chunk below the new end is written; a disk that acknowledges
    it and keeps nothing must fail the read-back like any other lost chunk."""
    disk, store = resize_source
    target = _target(tmp_path, disk.windows.start + 680 * MiB)
    plan = plan_restore(RestoreRequest(store, "pc", target, confirmed=True))
    # A Windows size ending inside a chunk just after data that is not all zeros: that
    # chunk is written only in part, and what is written would be missed if lost.
    ends = sorted((align_up(start + 1, MiB) for chunk in all_placed(plan.manifest, plan.index)
                   if chunk.partition == disk.windows.number
                   for start, length in chunk.span.used[:1]
                   if align_up(start + 1, MiB) % plan.manifest.chunk_size
                   and _holds_data(disk.path, disk.windows.start + start,
                                   min(length, align_up(start + 1, MiB) - start))),
                  reverse=True)
    for size in ends:
        choice = LayoutChoice(system_size=size)
        with contextlib.suppress(UsageError, TargetTooSmallError):
            plan = plan_restore(RestoreRequest(store, "pc", target, confirmed=True,
                                               layout=choice))
            break
    assert plan.layout is not None and plan.layout.resized is not None and not plan.refusals
    assert plan.layout.resized.new_size == size
    change = plan.layout.resized
    real_write = ChunkIO.write_used
    dropped: list[int] = []

    def drop_the_straddling_chunk(self: ChunkIO, offset: int, span: ChunkSpan,
                                  content: memoryview) -> int:
        if offset == change.new_start and span.start + span.length > change.new_size:
            dropped.append(offset + span.start)
            return span.used_bytes
        return real_write(self, offset, span, content)

    monkeypatch.setattr(ChunkIO, "write_used", drop_the_straddling_chunk)
    with pytest.raises(VerificationError) as caught:
        restore(RestoreRequest(store, "pc", target, confirmed=True, layout=choice))
    assert dropped and f"disk offset {dropped[0]}," in caught.value.title


def test_ntfsresize_writes_of_a_grow_are_read_back(
        resize_source: tuple[DemoDisk, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ntfsresize grows the volume through the view, which records every block it wrote;
    a disk that loses one of them after the sync fails the read-back."""
    _disk, store = resize_source
    target = _target(tmp_path, 2000 * MiB)
    real_read_back = imageview.read_back_written
    lost: list[int] = []

    def lose_a_block_then_read_back(spec: ViewSpec) -> None:
        records = Path(spec.written_log).read_bytes()
        first = int.from_bytes(records[:8], "little") * 4096 + spec.target_offset
        with open(spec.target, "r+b") as handle:
            handle.seek(first)
            handle.write(bytes(b ^ 0xFF for b in handle.read(512)))
        lost.append(first)
        real_read_back(spec)

    monkeypatch.setattr(imageview, "read_back_written", lose_a_block_then_read_back)
    with pytest.raises(VerificationError) as caught:
        restore(RestoreRequest(store, "pc", target, confirmed=True))
    assert lost and f"bytes {lost[0]}-{lost[0] + 4095} of the target differ" in \
        caught.value.title


def test_grow_onto_a_larger_disk(resize_source: tuple[DemoDisk, Path], tmp_path: Path) -> None:
    disk, store = resize_source
    target = _target(tmp_path, 2000 * MiB)
    assert restore(RestoreRequest(store, "pc", target, confirmed=True)).verified
    new = _check_resized(disk, store, target)
    assert new[disk.windows.number].size > disk.windows.size
    assert new[disk.table.partitions[-1].number].end == (2000 * MiB - 33 * 512) // MiB * MiB


def test_system_size_chosen_by_the_technician(resize_source: tuple[DemoDisk, Path],
                                              tmp_path: Path) -> None:
    disk, store = resize_source
    target = _target(tmp_path, 2000 * MiB)
    choice = LayoutChoice(system_size=700 * MiB)
    restore(RestoreRequest(store, "pc", target, confirmed=True, layout=choice))
    with BlockDevice.open(target) as device:
        new = {p.number: p for p in read_table(device).partitions}
    assert new[disk.windows.number].size == 700 * MiB


def test_too_small_target_refused_untouched(resize_source: tuple[DemoDisk, Path],
                                            tmp_path: Path) -> None:
    disk, store = resize_source
    target = _target(tmp_path, disk.windows.start + 200 * MiB)
    target.write_bytes(b"old data" * 1000 + bytes(target.stat().st_size - 8000))
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(TargetTooSmallError, match=r"Choose a disk of at least|bytes\)"):
        restore(RestoreRequest(store, "pc", target, confirmed=True))
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recovery", *argv], capture_output=True,
                          text=True, timeout=600, check=False)


def test_plan_only_shows_the_fitted_layout_and_writes_nothing(
        resize_source: tuple[DemoDisk, Path], tmp_path: Path) -> None:
    disk, store = resize_source
    target = _target(tmp_path, disk.windows.start + 680 * MiB)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    result = _cli("restore", "--store", str(store), "pc", str(target), "--plan-only", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    actions = {p["number"]: p["action"] for p in plan["layout"]["partitions"]}
    assert actions == {1: "kept", 2: "kept", 3: "shrunk", 4: "moved"}
    assert plan["bcd"].startswith("unchanged (GPT")
    shown = _cli("restore", "--store", str(store), "pc", str(target), "--plan-only")
    assert shown.returncode == 0
    assert "Windows shrunk to" in shown.stdout and "after  [" in shown.stdout
    verdict = text.layout_verdict(plan_restore(RestoreRequest(store, "pc", target)))
    assert verdict.startswith("Windows will be shrunk to ")  # what the TUI's target list says
    small = _target(tmp_path, disk.windows.start + 100 * MiB, "small.img")
    refused = _cli("restore", "--store", str(store), "pc", str(small), "--plan-only", "--json")
    assert refused.returncode == TargetTooSmallError.code
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
