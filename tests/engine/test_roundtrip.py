"""Capture -> restore -> compare with other tools, on loop devices and image files,
GPT and MBR, 512- and 4096-byte sectors."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.chunking import chunk_spans
from recovery.engine.resize import LayoutChoice
from recovery.engine.restore import RestoreRequest, restore
from recovery.engine.verify import verify
from recovery.fs.probe import probe_volume
from recovery.store.objects import ChunkStore
from recovery.sys import losetup
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB
from tests.engine.helpers import sfdisk_dump, volume_fingerprints

MakeFile = Callable[[str, int], Path]


def test_gpt_loop_device_to_larger_loop_device(gpt_disk: DemoDisk, tmp_path: Path,
                                               sparse_file: MakeFile) -> None:
    store = tmp_path / "store"
    target_file = sparse_file("target.img", gpt_disk.table.disk_size + 512 * MiB)
    # Data the image does not cover must survive: restore never zeroes unused ranges.
    marker_offset = gpt_disk.windows.start + _first_free_range(gpt_disk)
    with open(target_file, "r+b") as handle:
        handle.seek(marker_offset)
        handle.write(b"\xaa" * 4096)
    with losetup.loop_device(gpt_disk.path, read_only=True) as source, \
            losetup.loop_device(target_file) as target:
        summary = capture(CaptureRequest(source, store, name="pc1"))
        assert summary.stats.chunks_new > 0
        # --layout same: the exact layout, the rest of the larger disk left unused.
        result = restore(RestoreRequest(store, "pc1", target, confirmed=True,
                                        layout=LayoutChoice(mode="same")))
        assert result.verified and result.chunks_written > 0
        assert verify(store, "pc1", target).ok
    assert sfdisk_dump(target_file, 512) == sfdisk_dump(gpt_disk.path, 512)
    assert volume_fingerprints(target_file, gpt_disk.table) == \
        volume_fingerprints(gpt_disk.path, gpt_disk.table)
    with open(target_file, "rb") as handle:
        handle.seek(marker_offset)
        assert handle.read(4096) == b"\xaa" * 4096
        handle.seek(-512, os.SEEK_END)  # backup GPT header moved to the new end
        assert handle.read(8) == b"EFI PART"


def _first_free_range(disk: DemoDisk) -> int:
    with BlockDevice.open(disk.path) as device:
        used = probe_volume(device, disk.windows.start, disk.windows.size).used
    for (start, length), (next_start, _) in itertools.pairwise(used):
        if next_start - (start + length) >= 2 * 4096:
            return start + length
    raise AssertionError("no free range in the Windows volume")


def test_second_capture_stores_only_new_chunks(gpt_disk: DemoDisk, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = capture(CaptureRequest(gpt_disk.path, store, name="a")).stats
    second = capture(CaptureRequest(gpt_disk.path, store, name="b")).stats
    assert first.chunks_new > 10
    assert second.chunks_new == 0 and second.bytes_stored == 0
    assert second.chunks_reused == first.chunks_new + first.chunks_reused
    names = {(i.name, i.state) for i in ChunkStore.open(store).list_images()}
    assert names == {("a", "complete"), ("b", "complete")}


def test_mbr_4k_sectors_file_to_loop_device(tmp_path: Path, sparse_file: MakeFile) -> None:
    spec = DiskSpec(scheme="mbr", sector_size=4096, size=700 * MiB, windows_size=320 * MiB,
                    data_bytes=32 * MiB)
    disk = build_windows_disk(tmp_path / "mbr4k.img", spec)
    store = tmp_path / "store"
    summary = capture(CaptureRequest(disk.path, store, name="mbr"))
    assert [p.role for p in summary.partitions] == ["boot", "system", "reserved"]
    target_file = sparse_file("target.img", spec.size)
    with losetup.loop_device(target_file, sector_size=4096) as target:
        assert restore(RestoreRequest(store, "mbr", target, confirmed=True)).verified
    assert sfdisk_dump(target_file, 4096) == sfdisk_dump(disk.path, 4096)
    assert volume_fingerprints(target_file, disk.table) == \
        volume_fingerprints(disk.path, disk.table)
    with open(disk.path, "rb") as original, open(target_file, "rb") as restored:
        gap = disk.table.partitions[0].start
        assert restored.read(gap) == original.read(gap)  # boot code, signature, gap


def test_delta_restore_writes_only_damaged_chunks(small_disk: DemoDisk, small_store: Path,
                                                  tmp_path: Path) -> None:
    target = tmp_path / "copy.img"
    target.write_bytes(small_disk.path.read_bytes())
    with BlockDevice.open(small_disk.path) as device:
        used = probe_volume(device, small_disk.windows.start, small_disk.windows.size).used
    span = next(s for s in chunk_spans(small_disk.windows.size, 4 * MiB, used) if s.fully_used)
    with open(target, "r+b") as handle:  # damage exactly one chunk of the Windows volume
        handle.seek(small_disk.windows.start + span.start)
        handle.write(os.urandom(span.length))
    assert not verify(small_store, "base", target).ok
    result = restore(RestoreRequest(small_store, "base", target, delta=True, confirmed=True))
    assert result.chunks_written == 1 and result.verified
    assert result.chunks_skipped > 10
    assert verify(small_store, "base", target).ok
    assert target.read_bytes() == small_disk.path.read_bytes()
