"""Rescue capture: read a failing disk the way GNU ddrescue does, on used blocks only.

A normal capture stops at the first unreadable sector (exit 11). A rescue capture keeps
going, because on a dying disk every extra read may be the last:

1. First pass, the important data first (each volume's boot sector, $MFT, $MFTMirr,
   $LogFile, $Bitmap, the registry hives; then everything else in disk order), whole chunks
   read past the page cache. A chunk that fails is read again in blocks; the first failing
   block is recorded and the reader skips ahead, by a skip that doubles with every error
   in a row (an unreadable area is rarely a single sector), recording what it skipped.
   A read that succeeds but is very slow skips ahead the same way: a weak area that
   takes seconds per read is better read once everything easy is saved.
2. Later passes go back into the recorded ranges, backwards (the drive's read-ahead does
   not walk into the bad area from the good side), in smaller reads each pass: 1 MiB,
   64 KiB, then single sectors, then further single-sector retries; within a limit of
   passes and time.
3. What still fails is stored as zeros and returned as unreadable ranges (disk offsets,
   sector-aligned, used bytes only): free space is never read, so never lost.

Chunks are built in memory while ranges of them are outstanding: a skipped chunk costs
nothing until it is read, and a chunk is stored as soon as a pass has read all of it, so
memory holds the chunks with bytes still failing (a dying disk's damage is usually a few
areas; each such chunk costs one chunk of memory). A repeat rescue of the
same disk starts from the newest rescue image (`PreviousRescue`): its chunks are reused
unread and only its unreadable ranges are tried again (ddrescue's map file).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from recovery.engine.chunking import ChunkSpan, _zero_unused, chunk_spans
from recovery.engine.pipeline import CAPTURE_DEPTH
from recovery.errors import CancelledError, DeviceIOError, Hint
from recovery.events import EventSink, Notice
from recovery.model.extents import Extent, clip, normalise, total
from recovery.store.index import ChunkRef
from recovery.sys.blockdev import BlockDevice
from recovery.sys.directio import ALIGN, DirectDevice, thread_buffer
from recovery.units import KiB, MiB, align_down, align_up, human_size

# (partition number, chunk content, used bytes) -> (digest, all zero), once stored
StoreChunk = Callable[[int, memoryview | bytes, int], tuple[bytes, bool]]
ChunkSource = Callable[[bytes], bytes]  # digest -> uncompressed chunk from the store
# First-pass reads at once: from START_DEPTH up to a normal capture's CAPTURE_DEPTH while
# reads come back fast (a normal capture's depth is what keeps a disk, or a loop device's
# server, busy: docs/benchmarks.md, "Issue 9, seventh pass"); a slow healthy disk (USB 2)
# stays shallow, so a read's time still tells a weak area from a long queue.
START_DEPTH = 4
_POLL_SECONDS = 0.05  # how often the first pass, waiting in order, looks for trouble


@dataclass(frozen=True)
class RescueOptions:
    """Limits of a rescue capture (`recovery capture --rescue ...`)."""

    retry_passes: int = 2  # single-sector passes after the first one (ddrescue --retry-passes)
    time_limit: float = 0.0  # seconds for all passes after the first; 0: none
    slow_read_seconds: float = 5.0  # a first-pass chunk read slower than this skips ahead
    first_skip: int = 1 * MiB  # skip after the first error in a row; doubles per error
    max_skip: int = 256 * MiB
    block_size: int = 1 * MiB  # first-pass reads inside a chunk that failed whole


@dataclass
class RescueStats:
    good_read_seconds: float = 0.0
    bad_read_seconds: float = 0.0
    reads_failed: int = 0
    reads_retried: int = 0
    passes: int = 1
    stopped_by_time: bool = False


@dataclass(frozen=True)
class PreviousRescue:
    """An earlier rescue image of the same partition (same place, same used blocks)."""

    image: str
    chunks: tuple[ChunkRef, ...]
    unreadable: tuple[Extent, ...]  # from the partition start


@dataclass(frozen=True)
class RescueTarget:
    """One partition to rescue; extents are relative to the partition start."""

    number: int
    offset: int
    size: int
    used: list[Extent]
    priority: list[Extent] = field(default_factory=list)  # most important first
    previous: PreviousRescue | None = None


@dataclass
class RescueResult:
    refs: dict[int, list[ChunkRef]]
    unreadable: dict[int, list[Extent]]  # per partition, from the partition start
    stats: RescueStats


@dataclass(frozen=True)
class _Read:
    content: memoryview  # the chunk's place in its buffer
    started: float
    ended: float
    error: DeviceIOError | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class _Outcome:
    """A first-pass chunk: stored by a worker (`ref`), failed, or claimed by the first
    pass while the disk was in trouble (`read` None: it reads the chunk itself)."""

    target: RescueTarget
    span: ChunkSpan
    read: _Read | None
    ref: ChunkRef | None


class _ReadDepth:
    """How many first-pass reads go to the disk at once. One more after each fast read (under
    a quarter of the slow-read time) up to CAPTURE_DEPTH, half after a sluggish one (over
    half of it: a queue that long on a slow disk would make healthy reads look slow), none
    after an error or a slow read: the workers then wait, and the first pass claims the
    chunks in disk order and reads them one at a time until the disk reads well again
    (`resume`); the workers go on with the chunks nobody claimed."""

    def __init__(self, slow_seconds: float) -> None:
        self.slow = slow_seconds
        self.limit = START_DEPTH
        self.busy = 0
        self.closed = False
        self._owner: dict[int, bool] = {}  # chunk job -> True: a worker's, False: claimed
        self._changed = threading.Condition()

    def enter(self, job: int) -> bool:
        """Wait for a free place to read `job`; False when the first pass claimed it."""
        with self._changed:
            while not (self.limit and self.busy < self.limit) and job not in self._owner \
                    and not self.closed:
                self._changed.wait()
            if job in self._owner or self.closed:
                return False
            self._owner[job] = True
            self.busy += 1
            return True

    def claim(self, job: int) -> bool:
        """While the disk is in trouble, take `job` from the workers unless one reads it."""
        with self._changed:
            if self.limit or job in self._owner:
                return False
            self._owner[job] = False
            self._changed.notify_all()
            return True

    def done(self, job: int) -> None:
        with self._changed:
            self._owner.pop(job, None)

    def leave(self, read: _Read) -> None:
        with self._changed:
            self.busy -= 1
            if read.error is not None or read.seconds > self.slow:
                self.limit = 0
            elif self.limit and read.seconds < self.slow / 4:
                self.limit = min(self.limit + 1, CAPTURE_DEPTH)
            elif self.limit and read.seconds > self.slow / 2:
                self.limit = max(1, self.limit // 2)
            # As many waiting workers as there are free places.
            self._changed.notify(max(0, self.limit - self.busy))

    def resume(self) -> None:
        with self._changed:
            if not self.limit:
                self.limit = START_DEPTH
                self._changed.notify_all()

    def close(self) -> None:
        """The first pass ends (or failed): waiting workers return without reading."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()


@dataclass
class _Pending:
    """A chunk with used ranges still unread; `data` holds what was read (zeros elsewhere)."""

    target: RescueTarget
    span: ChunkSpan
    data: bytearray | None  # None until something of it is read (a skipped chunk)
    todo: list[Extent]  # disk offsets still to read

    def place(self, disk_offset: int) -> int:
        return disk_offset - self.target.offset - self.span.start

    def buffer(self) -> bytearray:
        if self.data is None:
            self.data = bytearray(self.span.length)
        return self.data


class Rescuer:
    """Runs the passes over an open source; `store` hashes and keeps one chunk."""

    def __init__(self, device: BlockDevice, chunk_size: int, options: RescueOptions,
                 store: StoreChunk, fetch: ChunkSource, advance: Callable[[int], None],
                 events: EventSink, cancel: threading.Event | None) -> None:
        self.device, self.chunk_size, self.options = device, chunk_size, options
        self.store, self.fetch, self.advance = store, fetch, advance
        self.events, self.cancel = events, cancel
        self.sector = device.logical_sector_size
        self.stats = RescueStats()
        self.pending: list[_Pending] = []
        self.refs: dict[int, list[ChunkRef]] = {}
        self.skip_left = 0
        self.skip_size = options.first_skip
        self.direct = DirectDevice(device)
        self._reads_until = 0.0  # end of the latest first-pass read counted in the stats
        self._stats_lock = threading.Lock()  # the first pass's workers count their reads

    def run(self, targets: list[RescueTarget]) -> RescueResult:
        try:
            jobs = self._reuse_previous(targets)
            self._first_pass(_ordered(jobs, targets, self.chunk_size))
            self._later_passes()
            unreadable = self._finish()
        finally:
            self.direct.close()
        for refs in self.refs.values():
            refs.sort(key=lambda ref: ref.number)
        return RescueResult(self.refs, unreadable, self.stats)

    # --- an earlier rescue image: reuse its chunks, retry only its unreadable ranges ------
    def _reuse_previous(self, targets: list[RescueTarget]
                        ) -> list[tuple[RescueTarget, ChunkSpan]]:
        jobs = []
        for target in targets:
            self.refs[target.number] = []
            previous = target.previous
            old = {ref.number: ref for ref in previous.chunks} if previous else {}
            bad = list(previous.unreadable) if previous else []
            for span in chunk_spans(target.size, self.chunk_size, target.used):
                ref = old.get(span.number)
                if ref is None:
                    jobs.append((target, span))
                    continue
                todo = clip(bad, span.start, span.start + span.length)
                if not todo:
                    self.refs[target.number].append(ref)
                    self.advance(span.used_bytes)
                    continue
                data = bytearray(span.length) if ref.zero else bytearray(self.fetch(ref.digest))
                self.pending.append(_Pending(target, span, data, [
                    (target.offset + start, length) for start, length in todo]))
        return jobs

    # --- pass 1 ---------------------------------------------------------------------------
    def _first_pass(self, jobs: list[tuple[RescueTarget, ChunkSpan]]) -> None:
        """While the disk reads well, a normal capture's pipeline: each worker reads its chunk
        and stores it, up to `_ReadDepth.limit` reads at once. The decisions (skip, read in
        blocks, slow area) are taken here, in disk order, as the results come back; from
        the first error or slow read until the disk reads well again, this thread reads
        the chunks one at a time, as ddrescue does."""
        depth = _ReadDepth(self.options.slow_read_seconds)

        def work(job: int) -> _Outcome | None:
            target, span = jobs[job]
            if not depth.enter(job):
                return None  # claimed: read by the first pass itself
            read = self._read_whole(target, span)
            depth.leave(read)
            self._count(read)
            if read.error is not None:
                return _Outcome(target, span, read, None)
            _zero_unused(read.content, span)
            chunk_digest, zero = self.store(target.number, read.content, span.used_bytes)
            return _Outcome(target, span, read, ChunkRef(span.number, chunk_digest, zero))

        window: deque[tuple[int, Future[_Outcome | None]]] = deque()
        with ThreadPoolExecutor(CAPTURE_DEPTH, thread_name_prefix="rescue") as pool:
            try:
                for job in range(len(jobs)):
                    window.append((job, pool.submit(work, job)))
                    if len(window) >= 3 * CAPTURE_DEPTH:
                        self._next_in_order(window.popleft(), jobs, depth)
                while window:
                    self._next_in_order(window.popleft(), jobs, depth)
            finally:
                depth.close()
                for _job, future in window:
                    future.cancel()

    def _next_in_order(self, item: tuple[int, Future[_Outcome | None]],
                       jobs: list[tuple[RescueTarget, ChunkSpan]], depth: _ReadDepth) -> None:
        """The oldest chunk's outcome, or the chunk itself when the disk is in trouble and
        no worker has started it; decided, and the workers resumed once it reads well."""
        job, future = item
        while True:
            self._check_cancel()
            try:
                done = future.result(timeout=_POLL_SECONDS)
                break
            except FutureTimeout:
                if depth.claim(job):
                    done = None
                    break
        depth.done(job)
        self._decide(done or _Outcome(*jobs[job], None, None))
        if self._reading_well():
            depth.resume()

    def _decide(self, done: _Outcome) -> None:
        """One first-pass chunk, in disk order: kept, read here, split or deferred."""
        target, span, read, ref = done.target, done.span, done.read, done.ref
        if read is None:  # claimed while the disk was in trouble: read here
            if self.skip_left > 0:
                self._defer(target, span, None, self._used_on_disk(target, span))
                self.skip_left -= span.used_bytes
                return
            read = self._read_whole(target, span)
            self._count(read)
            if read.error is None:
                _zero_unused(read.content, span)
        if read.error is not None:
            self._failed(read.error)
            content = self._read_in_blocks(target, span)
            if content is None:
                return
        else:
            content = read.content
            if read.seconds > self.options.slow_read_seconds:
                self._note_slow(target.offset + span.start, read.seconds)
            elif self.skip_left == 0:
                self.skip_size = self.options.first_skip
        if ref is None:
            chunk_digest, zero = self.store(target.number, content, span.used_bytes)
            ref = ChunkRef(span.number, chunk_digest, zero)
        self.refs[target.number].append(ref)
        self.advance(span.used_bytes)

    def _reading_well(self) -> bool:
        return self.skip_left == 0 and self.skip_size == self.options.first_skip

    def _read_whole(self, target: RescueTarget, span: ChunkSpan) -> _Read:
        """One read of the chunk from its first to its last used byte, into this thread's
        chunk buffer (a worker stores the chunk before it reads the next)."""
        buffer = thread_buffer(self.chunk_size + 2 * ALIGN, "rescue-chunk")
        base = target.offset + span.start
        low = align_down(base, ALIGN)
        content = buffer[base - low: base - low + span.length]
        first = target.offset + span.used[0][0]
        last = target.offset + span.used[-1][0] + span.used[-1][1]
        start, end = align_down(first, ALIGN), min(align_up(last, ALIGN), self.device.size)
        started = time.monotonic()
        try:
            if not self.direct.read_into(start, buffer[start - low: end - low]):
                content[first - base: last - base] = self.device.read_at(first, last - first)
        except DeviceIOError as exc:
            return _Read(content, started, time.monotonic(), exc)
        return _Read(content, started, time.monotonic(), None)

    def _count(self, read: _Read) -> None:
        """A read's time, as it ends. First-pass reads overlap (the workers' with each other
        and with this thread's reads in blocks): each adds only the time no read counted
        before it was under way, to the good or the failing reads' time."""
        with self._stats_lock:
            seconds = max(0.0, read.ended - max(read.started, self._reads_until))
            self._reads_until = max(self._reads_until, read.ended)
            if read.error is None:
                self.stats.good_read_seconds += seconds
            else:
                self.stats.bad_read_seconds += seconds

    def _read_in_blocks(self, target: RescueTarget, span: ChunkSpan) -> memoryview | None:
        """A chunk that failed whole, block by block; the first bad block starts a skip."""
        data = bytearray(span.length)
        todo: list[Extent] = []
        for start, length in _blocks(self._used_on_disk(target, span), self.options.block_size):
            if self.skip_left > 0:
                todo.append((start, length))
                self.skip_left -= length
                continue
            offset = start - target.offset - span.start
            if not self._read_piece(start, memoryview(data)[offset: offset + length]):
                todo.append((start, length))
                self._skip_ahead()
        if todo:
            self._defer(target, span, data, todo)
            return None
        return memoryview(data)  # only free space inside the chunk failed

    def _used_on_disk(self, target: RescueTarget, span: ChunkSpan) -> list[Extent]:
        return [(target.offset + start, length) for start, length in span.used]

    def _defer(self, target: RescueTarget, span: ChunkSpan, data: bytearray | None,
               todo: list[Extent]) -> None:
        self.pending.append(_Pending(target, span, data, normalise(todo)))

    def _skip_ahead(self) -> None:
        self.skip_left = self.skip_size
        self.skip_size = min(2 * self.skip_size, self.options.max_skip)

    def _note_slow(self, offset: int, elapsed: float) -> None:
        self.events(Notice(f"Slow area at byte {offset} of {self.device.path} ({elapsed:.1f} s "
                           f"for one read): skipping {human_size(self.skip_size)} ahead; it "
                           "is read after the rest.", "warning"))
        self._skip_ahead()

    def _failed(self, error: DeviceIOError) -> None:
        """A failed read, its time already counted (`_count`)."""
        if error.gone:  # not a bad sector: nothing more can be read, the image stays open
            raise error
        self.stats.reads_failed += 1

    def _read_piece(self, offset: int, dest: memoryview) -> bool:
        """Read `len(dest)` bytes at disk `offset` past the page cache; False on an error."""
        scratch = thread_buffer(len(dest), "rescue")[: len(dest)]
        started = time.monotonic()
        try:
            if not self.direct.read_into(offset, scratch, self.sector):
                scratch[:] = self.device.read_at(offset, len(dest))
        except DeviceIOError as exc:
            self._count(_Read(scratch, started, time.monotonic(), exc))
            self._failed(exc)
            return False
        self._count(_Read(scratch, started, time.monotonic(), None))
        dest[:] = scratch
        return True

    # --- passes 2 and later: back into the recorded ranges, smaller reads, backwards -----
    def _later_passes(self) -> None:
        options = self.options
        deadline = time.monotonic() + options.time_limit if options.time_limit else None
        sizes = [options.block_size, 64 * KiB] + [self.sector] * (1 + options.retry_passes)
        for size in sizes:
            left = sum(total(p.todo) for p in self.pending)
            if not left or self.stats.stopped_by_time:
                return
            self.stats.passes += 1
            self.events(Notice(f"Rescue pass {self.stats.passes}: {human_size(left)} still "
                               f"unread; reading it backwards in {human_size(size)} pieces."))
            self._pass(max(size, self.sector), deadline)
        if self.stats.stopped_by_time:
            self.events(Notice(f"The rescue time limit ({options.time_limit:g} s) is reached: "
                               "what is still unread is listed as unreadable. A rescue "
                               "capture of the disk again retries only that.", "warning"))

    def _pass(self, size: int, deadline: float | None) -> None:
        """One pass, backwards over the disk. A chunk read whole is stored at once, so only
        chunks with ranges still failing stay in memory."""
        still = []
        for pending in sorted(self.pending, key=lambda p: p.target.offset + p.span.start,
                              reverse=True):
            failed = [piece for start, length in reversed(pending.todo)
                      for piece in reversed(_blocks([(start, length)], size))
                      if not self._retry(pending, piece, deadline)]
            pending.todo = normalise(failed)
            if pending.todo:
                still.append(pending)
            else:
                self._store_pending(pending)
        self.pending = still

    def _retry(self, pending: _Pending, piece: Extent, deadline: float | None) -> bool:
        self._check_cancel()
        if deadline is not None and time.monotonic() > deadline:
            self.stats.stopped_by_time = True
        if self.stats.stopped_by_time:
            return False
        self.stats.reads_retried += 1
        at = pending.place(piece[0])
        return self._read_piece(piece[0], memoryview(pending.buffer())[at: at + piece[1]])

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError("Stopped on request.", "Nothing half-done is shown as "
                                 "complete; capturing again continues.",
                                 hint=Hint.RESUME_CAPTURE)

    def _store_pending(self, pending: _Pending) -> None:
        """Store a pending chunk; what is still in its todo list is zeros."""
        target = pending.target
        content = memoryview(pending.buffer())
        _zero_unused(content, pending.span)
        for start, length in pending.todo:
            at = pending.place(start)
            content[at: at + length] = bytes(length)
        chunk_digest, zero = self.store(target.number, content, pending.span.used_bytes)
        self.refs[target.number].append(ChunkRef(pending.span.number, chunk_digest, zero))
        self.advance(pending.span.used_bytes)
        pending.data = None

    def _finish(self) -> dict[int, list[Extent]]:
        unreadable: dict[int, list[Extent]] = {}
        for pending in self.pending:
            target = pending.target
            unreadable.setdefault(target.number, []).extend(
                (start - target.offset, length) for start, length in pending.todo)
            self._store_pending(pending)
        return {number: normalise(found) for number, found in unreadable.items()}


def _blocks(extents: list[Extent], size: int) -> list[Extent]:
    """`extents` cut at multiples of `size` (disk offsets), in order."""
    out = []
    for start, length in extents:
        end = start + length
        while start < end:
            piece_end = min(end, (start // size + 1) * size)
            out.append((start, piece_end - start))
            start = piece_end
    return out


def _ordered(jobs: list[tuple[RescueTarget, ChunkSpan]], targets: list[RescueTarget],
             chunk_size: int) -> list[tuple[RescueTarget, ChunkSpan]]:
    """Chunks holding each volume's important ranges first, in their order; then the rest
    in disk order."""
    by_key = {(target.number, span.number): (target, span) for target, span in jobs}
    first: list[tuple[RescueTarget, ChunkSpan]] = []
    for target in targets:
        for start, length in target.priority:
            for number in range(start // chunk_size, (start + length - 1) // chunk_size + 1):
                job = by_key.pop((target.number, number), None)
                if job is not None:
                    first.append(job)
    return first + [job for job in jobs if (job[0].number, job[1].number) in by_key]
