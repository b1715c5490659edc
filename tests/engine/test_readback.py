"""Read-back in waves during the restore: every written chunk is checked, early waves too."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine import readback
from recovery.engine.chunking import ChunkIO, ChunkSpan
from recovery.engine.placed import PlacedChunk
from recovery.engine.restore import RestoreRequest, restore
from recovery.errors import CancelledError, Hint, VerificationError
from recovery.events import Event, PhaseFinished
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB
from tests.engine.helpers import volume_fingerprints


def _blank(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def test_small_waves_restore_and_count_every_byte(small_disk: DemoDisk, small_store: Path,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readback, "WAVE_BYTES", 4 * MiB)
    target = _blank(tmp_path / "target.img", small_disk.table.disk_size)
    finished: list[PhaseFinished] = []

    def sink(event: Event) -> None:
        if isinstance(event, PhaseFinished):
            finished.append(event)

    summary = restore(RestoreRequest(small_store, "base", target, confirmed=True), sink)
    assert summary.verified and summary.chunks_written > 5
    read_back = next(e for e in finished if e.phase == "read-back")
    written = next(e for e in finished if e.phase == "restore")
    assert read_back.done_bytes == written.done_bytes > 0
    assert volume_fingerprints(target, small_disk.table) == \
        volume_fingerprints(small_disk.path, small_disk.table)


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "phased"])
def test_a_write_lost_in_an_early_wave_is_found(small_disk: DemoDisk, small_store: Path,
                                                tmp_path: Path, overlap: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that acknowledges a write and keeps nothing: the read-back must say so."""
    monkeypatch.setattr(readback, "WAVE_BYTES", 4 * MiB)
    monkeypatch.setattr(readback, "overlaps", lambda device: overlap)
    real_write = ChunkIO.write_used
    dropped: list[int] = []
    one_at_a_time = threading.Lock()  # writers run in parallel: drop exactly one chunk

    def drop_one_chunk(self: ChunkIO, offset: int, span: ChunkSpan,
                          content: memoryview) -> int:
        with one_at_a_time:
            drop = not dropped and span.number > 0 and bool(bytes(content).strip(b"\0"))
            if drop:
                dropped.append(offset + span.start)
        return span.used_bytes if drop else real_write(self, offset, span, content)

    monkeypatch.setattr(ChunkIO, "write_used", drop_one_chunk)
    target = _blank(tmp_path / "target.img", small_disk.table.disk_size)
    with pytest.raises(VerificationError) as caught:
        restore(RestoreRequest(small_store, "base", target, confirmed=True))
    assert dropped and f"disk offset {dropped[0]}" in caught.value.title


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "phased"])
def test_waves_shrink_towards_the_end(small_disk: DemoDisk, small_store: Path, tmp_path: Path,
                                      overlap: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """What is read back after the last write, when nothing overlaps it, is a small wave."""
    monkeypatch.setattr(readback, "WAVE_BYTES", 16 * MiB)
    monkeypatch.setattr(readback, "overlaps", lambda device: overlap)
    monkeypatch.setattr(readback, "LAST_WAVE_BYTES", 1 * MiB)
    waves: list[int] = []
    real_check = readback.WaveReadBack._check

    def record(self: readback.WaveReadBack, wave: list[PlacedChunk]) -> None:
        waves.append(sum(chunk.span.used_bytes for chunk in wave))
        real_check(self, wave)

    monkeypatch.setattr(readback.WaveReadBack, "_check", record)
    target = _blank(tmp_path / "target.img", small_disk.table.disk_size)
    summary = restore(RestoreRequest(small_store, "base", target, confirmed=True))
    assert summary.verified and sum(waves) == summary.bytes_written
    assert len(waves) >= 3 and max(waves) >= 16 * MiB
    chunk = 4 * MiB  # a wave ends with the chunk that crosses its limit
    assert waves[-1] <= 1 * MiB + chunk and waves[-1] < max(waves)


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "phased"])
def test_a_cancelled_restore_stops_the_read_back_thread(small_disk: DemoDisk,
                                                       small_store: Path, tmp_path: Path,
                                                       overlap: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped mid-way, a restore leaves no thread reading the device it has closed."""
    monkeypatch.setattr(readback, "WAVE_BYTES", 4 * MiB)
    monkeypatch.setattr(readback, "overlaps", lambda device: overlap)
    cancel = threading.Event()
    waves: list[int] = []
    real_check = readback.WaveReadBack._check

    def cancel_during_second_wave(self: readback.WaveReadBack,
                                  wave: list[PlacedChunk]) -> None:
        waves.append(len(wave))
        if len(waves) == 2:
            cancel.set()
        real_check(self, wave)

    monkeypatch.setattr(readback.WaveReadBack, "_check", cancel_during_second_wave)
    target = _blank(tmp_path / "target.img", small_disk.table.disk_size)
    with pytest.raises(CancelledError) as caught:
        restore(RestoreRequest(small_store, "base", target, confirmed=True), cancel=cancel)
    assert caught.value.hint is Hint.RESUME_DELTA  # each shell names the --delta / switch
    assert not [t for t in threading.enumerate() if t.name.startswith("read-back")]


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "phased"])
def test_every_chunk_is_read_back_after_a_flush_that_followed_its_write(
        small_disk: DemoDisk, small_store: Path, tmp_path: Path, overlap: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-back's guarantee, whoever flushes: write, then flush, then read, for every
    chunk, overlapped or phased."""
    monkeypatch.setattr(readback, "WAVE_BYTES", 4 * MiB)
    monkeypatch.setattr(readback, "overlaps", lambda device: overlap)
    log: list[tuple[str, int]] = []
    lock = threading.Lock()
    real_write, real_read = ChunkIO.write_used, PlacedChunk.read_from
    real_flush = BlockDevice.flush

    def write(self: ChunkIO, offset: int, span: ChunkSpan, content: memoryview) -> int:
        written = real_write(self, offset, span, content)
        with lock:
            log.append(("write", offset + span.start))
        return written

    def flush(self: BlockDevice) -> None:
        with lock:
            flushed_after = len(log)
        real_flush(self)
        with lock:
            log.append(("flush", flushed_after))

    def read(self: PlacedChunk, chunk_io: ChunkIO) -> memoryview:
        with lock:
            log.append(("read", self.partition_offset + self.span.start))
        return real_read(self, chunk_io)

    monkeypatch.setattr(ChunkIO, "write_used", write)
    monkeypatch.setattr(BlockDevice, "flush", flush)
    monkeypatch.setattr(PlacedChunk, "read_from", read)
    target = _blank(tmp_path / "target.img", small_disk.table.disk_size)
    summary = restore(RestoreRequest(small_store, "base", target, confirmed=True))
    assert summary.verified
    written = {where: at for at, (what, where) in enumerate(log) if what == "write"}
    reads = [(at, where) for at, (what, where) in enumerate(log) if what == "read"]
    assert sorted(where for _, where in reads) == sorted(written)
    for at, where in reads:
        # a flush that started after the write was logged and ended before this read
        assert any(what == "flush" and started > written[where] and done < at
                   for done, (what, started) in enumerate(log)), where
