"""Read-back verification that overlaps with the writing of a restore.

Waiting for the last chunk before reading back the first leaves the disk idle in one
direction for the whole restore. Instead, every WAVE_BYTES of written chunks the device is
flushed and the chunks written before that flush are read back from the medium (past the
page cache) and hashed, while the next wave is being written. The guarantee is the one a
read-back after the end gives: every written range is read back after a flush that
followed its write, and compared with its BLAKE3.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from recovery.engine.verify import PlacedChunk, check_on_disk
from recovery.events import EventSink, phase
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB

# Large enough that flushes stay rare on a real disk (a 2 TB restore flushes a few
# thousand times), small enough that most of the reading overlaps with writing.
WAVE_BYTES = 256 * MiB
_POLL_SECONDS = 0.2


class OverlappedReadBack:
    """Collects written chunks (`add`), reads them back in waves; `finish` after the last
    flush reads the rest and returns every problem found. Use as a context manager."""

    def __init__(self, device: BlockDevice, enabled: bool,
                 cancel: threading.Event | None) -> None:
        self.device = device
        self.enabled = enabled
        self.cancel = cancel
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="read-back")
        self._jobs: list[Future[list[str]]] = []
        self._wave: list[PlacedChunk] = []
        self._wave_bytes = 0
        self._total_bytes = 0
        self._checked_bytes = 0  # written only by the read-back thread

    def __enter__(self) -> OverlappedReadBack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, chunk: PlacedChunk) -> None:
        """`chunk` has been written; called in write order from one thread."""
        if not self.enabled:
            return
        self._wave.append(chunk)
        self._wave_bytes += chunk.span.used_bytes
        self._total_bytes += chunk.span.used_bytes
        if self._wave_bytes >= WAVE_BYTES:
            self.device.flush()
            self._start_wave()

    def finish(self, events: EventSink) -> list[str]:
        """Read back what is left (the caller has flushed) and wait for every wave."""
        self._start_wave()
        problems: list[str] = []
        with phase(events, "read-back", "Reading back", self._total_bytes) as tracker:
            for job in self._jobs:
                while True:
                    try:
                        problems += job.result(timeout=_POLL_SECONDS)
                        break
                    except TimeoutError:
                        pass
                    finally:
                        tracker.advance(self._checked_bytes - tracker.done_bytes)
        return problems

    def _start_wave(self) -> None:
        if self._wave:
            self._jobs.append(self._pool.submit(self._check, self._wave))
        self._wave, self._wave_bytes = [], 0

    def _check(self, wave: list[PlacedChunk]) -> list[str]:
        return [problem for _chunk, problem in
                check_on_disk(self.device, iter(wave), self._count, self.cancel) if problem]

    def _count(self, nbytes: int) -> None:
        self._checked_bytes += nbytes
