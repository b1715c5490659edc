"""Overlap reading, hashing, compressing and writing on all cores, results kept in order.

BLAKE3, zstd and pread/pwrite release the GIL, so plain threads keep both cores busy; the
window bounds memory (a few chunks per worker), and results come back in submission order
so an index can be written as the disk is walked.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from recovery.errors import CancelledError

In = TypeVar("In")
Out = TypeVar("Out")


# Chunk requests kept in flight, not CPU threads: a worker mostly waits for its O_DIRECT read
# or chunk-file write, and the disk serves more at once the more it is given (measured on
# this machine's virtual disk, fio, 4 MiB O_DIRECT reads and writes mixed: 270 MB/s at one
# request in flight, 570 at 4, 800 at 32). A capture of the bench volume took 5.4-6.5 s
# with 4 workers, 3.9-4.3 s with 8, 3.5-3.9 s with 16 (docs/benchmarks.md, "Issue 9, third
# pass"). Memory: about two chunk buffers per worker.
IO_DEPTH = 16
# A capture's chunk files are written through the page cache (recovery.store.objects), so
# its workers wait mostly on reads, which the disk serves faster with more in flight (fio
# here: 4 MiB reads and writes mixed 2:1, 1.06 GB/s at 16, 1.15 at 32): 3.2-3.3 s instead
# of 3.5-4.4 s at 16 (docs/benchmarks.md, "Issue 9, fifth pass"). Memory: one 4 MiB read
# buffer and one compressed chunk per worker.
CAPTURE_DEPTH = 32


def default_workers() -> int:
    return max(IO_DEPTH, 2 * (os.cpu_count() or 2))


def ordered_map(work: Callable[[In], Out], items: Iterable[In], *,
                workers: int | None = None, cancel: threading.Event | None = None,
                window_per_worker: int = 3) -> Iterator[Out]:
    """Like map(), on a thread pool, at most `workers * window_per_worker` items in flight.

    An exception in any item is raised from the iterator (after the items submitted before
    it are drained), so the caller sees the first failure, in order.
    """
    workers = workers or default_workers()
    window = workers * window_per_worker
    pending: deque[Future[Out]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recovery") as pool:
        try:
            for item in items:
                _check_cancel(cancel)
                pending.append(pool.submit(work, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                # Also while draining: the window holds many chunks (IO_DEPTH workers).
                _check_cancel(cancel)
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError("Stopped on request.",
                             "Nothing half-done is shown as complete; run the same command "
                             "again to continue.")
