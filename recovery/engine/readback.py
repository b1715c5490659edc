"""Read-back verification of a restore in waves: write a wave, flush, read it back.

Every WAVE_BYTES of written chunks the device is flushed and those chunks are read back
from the medium (past the page cache) and hashed by a background thread. The guarantee is
the one a single read-back after the last write gives: every written range is read back
after a flush that followed its write, and compared with its BLAKE3. A failing disk is
also caught a wave after it starts failing, not at the end of a long restore.

Overlapped or phased (`overlaps`): on a disk that does not spin, the workers go on writing
the next wave while the last one is read back, at most one wave behind (the writer waits
when reading falls behind), so the disk always has requests queued and only a small last
wave is read after the last write (waves shrink towards the end). On a spinning disk the
head would seek between the two regions on every request, so there each wave is read
back before writing goes on.

A wave's flush starts as soon as its last write has returned, in a thread of its own, while
the wave before is still being read back: the reader then finds it done instead of waiting
for it between two waves. The last wave needs none of its own: `finish` follows the
caller's flush after the last write.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType

from recovery.engine.placed import PlacedChunk
from recovery.engine.verify import check_on_disk
from recovery.events import EventSink, phase
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB

# A flush per wave: rare on a real disk (a 2 TB restore flushes about 8000 times). Waves
# shrink towards the end (half of what is left, down to LAST_WAVE_BYTES) so that what is
# read back after the last write, when nothing overlaps it, is short.
WAVE_BYTES = 256 * MiB
LAST_WAVE_BYTES = 16 * MiB
_POLL_SECONDS = 0.1


def overlaps(device: BlockDevice) -> bool:
    """Read a wave back while the next is written, except on a spinning disk."""
    return not device.rotational


class WaveReadBack:
    """Collects written chunks (`add`, in write order) and reads each full wave back in the
    background; `finish`, after the last flush, reads the rest and returns every problem
    found. Use as a context manager: leaving it stops and waits for the read-back thread,
    so it never reads a device that is being closed."""

    def __init__(self, device: BlockDevice, enabled: bool, planned_bytes: int,
                 cancel: threading.Event | None) -> None:
        self.device = device
        self.overlap = overlaps(device)
        self.planned_bytes = planned_bytes  # used bytes the restore may write
        self.enabled = enabled
        self.cancel = cancel
        self.problems: list[str] = []
        self._stop = threading.Event()  # set on cancel or failure: the read-back gives up
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="read-back")
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="read-back-flush")
        self._running: Future[None] | None = None
        self._flushed: Future[None] | None = None  # the flush the next wave read waits for
        self._wave: list[PlacedChunk] = []
        self._wave_bytes = 0
        self._checked_bytes = 0  # written only by the read-back thread
        self._total_bytes = 0

    def __enter__(self) -> WaveReadBack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._flusher.shutdown(wait=True, cancel_futures=True)

    def add(self, chunk: PlacedChunk) -> None:
        """`chunk` has been written (its write returned); called from one thread."""
        if not self.enabled:
            return
        self._wave.append(chunk)
        self._wave_bytes += chunk.span.used_bytes
        self._total_bytes += chunk.span.used_bytes
        if self._wave_bytes >= self._wave_limit():
            self._start_wave()
            if not self.overlap:
                self._wait(None)

    def finish(self, events: EventSink) -> list[str]:
        """Read back the last wave (the caller has flushed); all problems, in disk order."""
        self._start_wave(flushed=True)
        with phase(events, "read-back", "Reading back", self._total_bytes) as tracker:
            while not self._wait(_POLL_SECONDS):
                if self.cancel is not None and self.cancel.is_set():
                    self._stop.set()
                tracker.advance(self._checked_bytes - tracker.done_bytes)
            tracker.advance(self._checked_bytes - tracker.done_bytes)
        return self.problems

    def _wave_limit(self) -> int:
        left = self.planned_bytes - self._total_bytes
        return min(WAVE_BYTES, max(LAST_WAVE_BYTES, left // 2))

    def _start_wave(self, flushed: bool = False) -> None:
        """Flush the collected wave (unless the caller has) and hand it to the read-back
        thread once the previous one is done."""
        wave, self._wave, self._wave_bytes = self._wave, [], 0
        # Every write of the wave returned before add() heard of it: this flush follows them.
        flush = None if flushed or not wave else self._flusher.submit(self.device.flush)
        self._wait(None)
        if wave:
            self._flushed = flush
            self._running = self._pool.submit(self._check, wave)

    def _wait(self, timeout: float | None) -> bool:
        """True when no wave is being read back; raises what the read-back raised."""
        if self._running is None:
            return True
        try:
            self._running.result(timeout)
        except FutureTimeout:
            return False
        self._running = None
        return True

    def _check(self, wave: list[PlacedChunk]) -> None:
        # Flushed by the flush thread, not by the writer: the workers' results would wait
        # for the writer while it flushes (about 0.1 s a wave), nor here before reading:
        # the flush then overlaps the read of the wave before.
        if self._flushed is not None:
            self._flushed.result()
        self.problems += [problem for _chunk, problem in
                          check_on_disk(self.device, iter(wave), self._count, self._stop)
                          if problem]

    def _count(self, nbytes: int) -> None:
        self._checked_bytes += nbytes
