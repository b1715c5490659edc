"""A repeat capture of an unchanged NTFS volume reuses the earlier image after reading a
random sample of its chunks back from the disk; a change through NTFS, writes past NTFS
that the sample hits, a chunk missing from the store, or --read-all make it read
everything."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import DEFAULT_CHUNK_SIZE, CaptureRequest, capture
from recovery.engine.capture_result import CaptureSummary
from recovery.engine.chunking import chunk_spans
from recovery.engine.restore import RestoreRequest, restore
from recovery.engine.unchanged import (
    ntfs_fingerprint,
    sample_chunks,
    spot_check_size,
)
from recovery.engine.verify import verify
from recovery.events import Event, Notice
from recovery.fs.ntfs import ATTR_DATA, NtfsReader, decode_runlist
from recovery.model.layout import TablePartition
from recovery.store.index import ChunkRef, PartitionIndex
from recovery.store.objects import ChunkStore
from recovery.sys import ntfs3g
from recovery.sys.blockdev import BlockDevice
from recovery.ui import text
from tests.engine.helpers import volume_fingerprints

ROOT = Path(__file__).resolve().parents[2]
CHUNK = DEFAULT_CHUNK_SIZE


def _copy(disk: DemoDisk, tmp_path: Path) -> Path:
    copy = tmp_path / "pc.img"
    subprocess.run(["cp", "--sparse=always", str(disk.path), str(copy)], check=True)
    return copy


def _capture(request: CaptureRequest) -> tuple[CaptureSummary, list[Notice]]:
    notices: list[Notice] = []

    def sink(event: Event) -> None:
        if isinstance(event, Notice):
            notices.append(event)

    return capture(request, sink), notices


def _reused(notices: list[Notice], number: int) -> bool:
    return any(n.message.startswith(f"Partition {number} is unchanged") for n in notices)


def _index(store: Path, image: str, number: int) -> PartitionIndex:
    _manifest, index = ChunkStore.open(store).load_image(image)
    return next(p for p in index.partitions if p.number == number)


def _windows_used(store: Path, image: str, number: int) -> int:
    return ChunkStore.open(store).load_image(image)[0].partition(number).used_bytes


def test_unchanged_volume_reuses_chunks_by_default_and_restores_exactly(
        small_disk: DemoDisk, tmp_path: Path) -> None:
    store, windows = tmp_path / "store", small_disk.windows
    first, first_notices = _capture(CaptureRequest(small_disk.path, store, name="a"))
    assert not _reused(first_notices, windows.number)
    first_manifest = ChunkStore.open(store).load_image("a")[0]
    # The typed result: every used byte of each captured partition read, its chunks listed.
    for part in first.partitions:
        assert (part.bytes_read, part.meta.chunk_count, part.reused_from) == \
            ((part.used_bytes, len(_index(store, "a", part.number).chunks), "")
             if part.selected else (0, 0, ""))
    listed = subprocess.run([sys.executable, "-m", "recovery", "capture", str(small_disk.path),
                             "--store", str(store), "--name", "b", "--json"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    second = json.loads(listed.stdout)
    sampled = spot_check_size(len(_index(store, "a", windows.number).chunks))
    check = f"{sampled} of {sampled} sampled chunks matched"
    parts = {p["number"]: p for p in second["partitions"]}
    assert {n: p["reused_from"] for n, p in parts.items()} == \
        {n: "a" if p["fs_type"] == "ntfs" else None for n, p in parts.items()}  # FAT, MSR read
    assert parts[windows.number]["reuse_check"] == check
    assert parts[windows.number]["chunks"] == len(_index(store, "a", windows.number).chunks)
    assert parts[windows.number]["bytes_read"] <= spot_check_size(
        parts[windows.number]["chunks"]) * CHUNK  # the spot check's samples at most
    ntfs = [p.number for p in first_manifest.partitions if p.fs_type == "ntfs"]
    others = first.stats.bytes_read - sum(first_manifest.partition(n).used_bytes for n in ntfs)
    samples = sum(spot_check_size(len(_index(store, "a", n).chunks)) for n in ntfs)
    # Of the NTFS volumes only the samples were read.
    assert others < second["bytes_read"] <= others + samples * CHUNK
    meta = ChunkStore.open(store).load_image("b")[0].partition(windows.number)
    assert (meta.reused_from, meta.reuse_check) == ("a", check)
    assert meta.fingerprint == ChunkStore.open(store).load_image("a")[0].partition(
        windows.number).fingerprint
    assert _index(store, "b", windows.number) == _index(store, "a", windows.number)
    third, _ = _capture(CaptureRequest(small_disk.path, store, name="c"))
    reused = next(p for p in third.partitions if p.number == windows.number)
    assert (reused.reused_from, reused.reuse_check) == ("b", check)
    assert f"unchanged since b, reused: {check}" in text.capture_summary(third)
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(small_disk.table.disk_size)
    assert restore(RestoreRequest(store, "b", target, confirmed=True)).verified
    assert verify(store, "b", small_disk.path).ok
    assert volume_fingerprints(target, small_disk.table) == \
        volume_fingerprints(small_disk.path, small_disk.table)


def test_a_change_through_ntfs_is_read_again(small_disk: DemoDisk, tmp_path: Path) -> None:
    source, store, windows = _copy(small_disk, tmp_path), tmp_path / "store", small_disk.windows
    _capture(CaptureRequest(source, store, name="a"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with ntfs3g.mount(source, windows.start, mnt, read_write=True, size=windows.size):
        victim = max((p for p in mnt.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        times = victim.stat()
        with open(victim, "r+b") as handle:  # same size, then the old times put back
            handle.write(b"changed in place")
        os.utime(victim, ns=(times.st_atime_ns, times.st_mtime_ns))
    summary, notices = _capture(CaptureRequest(source, store, name="b"))
    assert not _reused(notices, windows.number)
    assert summary.stats.bytes_read >= _windows_used(store, "b", windows.number)
    assert _index(store, "b", windows.number) != _index(store, "a", windows.number)
    assert verify(store, "b", source).ok
    assert not verify(store, "a", source).ok


def _metadata_chunks(device: BlockDevice, part: TablePartition) -> set[int]:
    """Chunks holding what the fingerprint hashes: the boot sector, $MFT, $LogFile, $Bitmap."""
    reader = NtfsReader(device, part.start, part.size)
    cluster, found = reader.boot.cluster_size, {0}
    for record in (0, 2, 6):
        for attribute in reader.attributes(record):
            if attribute.type != ATTR_DATA or attribute.name or attribute.resident:
                continue
            for lcn, count in decode_runlist(attribute.value):
                assert lcn is not None
                first, last = lcn * cluster, (lcn + count) * cluster - 1
                found.update(range(first // CHUNK, last // CHUNK + 1))
    return found


def _overwrite_past_ntfs(source: Path, part: TablePartition, previous: PartitionIndex
                         ) -> set[int]:
    """Like an interrupted restore of another image: every other chunk between the first
    and the last gets other data, the metadata chunks stay. Returns the chunk numbers."""
    with BlockDevice.open(source) as device:
        keep = _metadata_chunks(device, part)
    middle = [ref.number for ref in previous.chunks[1:-1] if ref.number not in keep]
    victims = set(middle[::2])
    rng = random.Random(5)
    fd = os.open(source, os.O_WRONLY)
    try:
        for span in chunk_spans(part.size, CHUNK, list(previous.extents)):
            for start, length in span.used if span.number in victims else ():
                os.pwrite(fd, rng.randbytes(length), part.start + start)
        os.fsync(fd)
    finally:
        os.close(fd)
    return victims


def _hits(chunks: tuple[ChunkRef, ...], victims: set[int], seed: int) -> bool:
    return any(ref.number in victims for ref in sample_chunks(chunks, random.Random(seed)))


def test_writes_past_ntfs_are_caught_by_the_spot_check(small_disk: DemoDisk,
                                                       tmp_path: Path) -> None:
    source, store, windows = _copy(small_disk, tmp_path), tmp_path / "store", small_disk.windows
    _capture(CaptureRequest(source, store, name="a"))
    previous = _index(store, "a", windows.number)
    with BlockDevice.open(source) as device:
        before = ntfs_fingerprint(device, windows.start, windows.size)
    victims = _overwrite_past_ntfs(source, windows, previous)
    assert len(victims) >= 2
    with BlockDevice.open(source) as device:
        assert ntfs_fingerprint(device, windows.start, windows.size) == before  # NTFS blind
    # A sample that hits (3 in 4 do here); the capture must draw the same one.
    seed = next(s for s in range(100) if _hits(previous.chunks, victims, s))
    summary, notices = _capture(CaptureRequest(source, store, name="b", spot_check_seed=seed))
    assert not _reused(notices, windows.number)
    warnings = [n.message for n in notices if n.level == "warning"]
    assert any(m.startswith(f"Partition {windows.number}: ") and "sampled chunks differ "
               "from image a" in m for m in warnings), warnings
    assert summary.stats.bytes_read >= _windows_used(store, "b", windows.number)
    meta = ChunkStore.open(store).load_image("b")[0].partition(windows.number)
    assert meta.reused_from == "" and meta.reuse_check.endswith(
        " sampled chunks differed from image a: read in full")
    assert meta.reuse_check in text.capture_summary(summary)
    changed = {ref.number for ref in _index(store, "b", windows.number).chunks} & victims
    assert changed == victims
    assert verify(store, "b", source).ok
    assert not verify(store, "a", source).ok


def test_a_chunk_missing_from_the_store_is_read_again(small_disk: DemoDisk,
                                                      tmp_path: Path) -> None:
    store, windows = tmp_path / "store", small_disk.windows
    _capture(CaptureRequest(small_disk.path, store, name="a"))
    chunks = ChunkStore.open(store)
    lost = next(ref for ref in _index(store, "a", windows.number).chunks if not ref.zero)
    chunks.chunk_path(lost.digest).unlink()
    summary, notices = _capture(CaptureRequest(small_disk.path, store, name="b"))
    assert not _reused(notices, windows.number)
    assert summary.stats.chunks_new >= 1 and chunks.has(lost.digest)
    assert verify(store, "b", small_disk.path).ok


def test_read_all_reads_everything(small_disk: DemoDisk, tmp_path: Path) -> None:
    store, windows = tmp_path / "store", small_disk.windows
    first, _ = _capture(CaptureRequest(small_disk.path, store, name="a"))
    second, notices = _capture(CaptureRequest(small_disk.path, store, name="b", read_all=True))
    assert not _reused(notices, windows.number)
    assert second.stats.bytes_read == first.stats.bytes_read
    assert second.stats.chunks_new == 0
    assert all(p.reused_from == "" for p in second.partitions)


def test_sample_is_first_last_and_one_per_slice() -> None:
    chunks = tuple(ChunkRef(number, bytes(32), False) for number in range(0, 2000, 2))
    assert [spot_check_size(n) for n in (1, 3, 12, 363, 1000, 1600, 500_000)] == \
        [1, 3, 4, 4, 10, 16, 16]
    samples = [sample_chunks(chunks, random.Random(seed)) for seed in range(50)]
    for sample in samples:
        assert len(sample) == 10 == len(set(sample)) and sample == sorted(sample)
        assert sample[0] == chunks[0] and sample[-1] == chunks[-1]
        for number, ref in enumerate(sample[1:-1]):  # 998 inner chunks, 8 slices
            assert 1 + number * 998 // 8 <= chunks.index(ref) < 1 + (number + 1) * 998 // 8
    assert len({tuple(sample) for sample in samples}) > 40  # random, not a fixed pattern
    # A run of differing chunks longer than two slices (an interrupted restore writes in
    # order) is hit by every sample.
    run = {ref.number for ref in chunks[300:550]}
    assert all(any(ref.number in run for ref in sample) for sample in samples)


def test_fingerprint_is_empty_for_non_ntfs(small_disk: DemoDisk) -> None:
    esp = next(p for p in small_disk.table.partitions if p.number != small_disk.windows.number)
    with BlockDevice.open(small_disk.path) as device:
        assert ntfs_fingerprint(device, esp.start, esp.size) == ""
        windows = small_disk.windows
        assert ntfs_fingerprint(device, windows.start, windows.size).startswith("ntfs-meta")
