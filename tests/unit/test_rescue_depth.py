"""The rescue's first-pass read depth: deep while reads come back fast, shallow when they
slow down, none after an error or a slow read: the workers wait and the first pass claims
the chunks in order and reads them itself, until it says the disk reads well again."""

from __future__ import annotations

import threading

from recovery.engine.pipeline import CAPTURE_DEPTH
from recovery.engine.rescue import START_DEPTH, _Read, _ReadDepth
from recovery.errors import DeviceIOError

SLOW = 8.0


def _read(seconds: float, failed: bool = False) -> _Read:
    error = DeviceIOError("Input/output error at byte 0.", "") if failed else None
    return _Read(memoryview(b""), 100.0, 100.0 + seconds, error)


def _finish(depth: _ReadDepth, seconds: float, failed: bool = False) -> None:
    assert depth.enter(-1)
    depth.done(-1)
    depth.leave(_read(seconds, failed))


def test_fast_reads_go_as_deep_as_a_normal_capture() -> None:
    depth = _ReadDepth(SLOW)
    assert depth.limit == START_DEPTH
    for _ in range(2 * CAPTURE_DEPTH):
        _finish(depth, 0.01)
    assert depth.limit == CAPTURE_DEPTH


def test_sluggish_reads_halve_the_depth_and_ordinary_ones_keep_it() -> None:
    depth = _ReadDepth(SLOW)
    for _ in range(12):
        _finish(depth, 0.01)
    assert depth.limit == 16
    _finish(depth, SLOW * 0.75)  # a long queue on a slow disk, not yet a slow read
    assert depth.limit == 8
    _finish(depth, SLOW / 3)  # between a quarter and a half: unchanged
    assert depth.limit == 8


def test_an_error_or_a_slow_read_stops_new_reads_until_resumed() -> None:
    for seconds, failed in ((0.01, True), (SLOW + 1, False)):
        depth = _ReadDepth(SLOW)
        assert not depth.claim(0)  # reading well: the workers read every chunk
        _finish(depth, seconds, failed)
        assert depth.limit == 0 and depth.claim(0)
        depth.resume()
        assert depth.limit == START_DEPTH and depth.enter(1)


def _waiting(depth: _ReadDepth, job: int) -> tuple[threading.Thread, list[bool]]:
    got: list[bool] = []
    worker = threading.Thread(target=lambda: got.append(depth.enter(job)))
    worker.start()
    worker.join(0.2)
    assert worker.is_alive()
    return worker, got


def test_in_trouble_workers_wait_and_the_first_pass_claims_their_chunks() -> None:
    depth = _ReadDepth(SLOW)
    for job in range(START_DEPTH):
        assert depth.enter(job)
    first, got_first = _waiting(depth, 10)  # every place is taken
    depth.leave(_read(0.01, failed=True))
    second, got_second = _waiting(depth, 11)  # the disk is in trouble: nobody reads
    first.join(0.2)
    assert first.is_alive()
    assert not depth.claim(2)  # a worker reads that one already
    assert depth.claim(10)  # this one the first pass reads itself
    first.join(5)
    assert got_first == [False]
    depth.resume()  # the disk reads well again: the workers go on
    second.join(5)
    assert got_second == [True]


def test_closing_releases_waiting_workers() -> None:
    depth = _ReadDepth(SLOW)
    assert depth.enter(0)
    depth.leave(_read(0.01, failed=True))
    worker, got = _waiting(depth, 1)
    depth.close()
    worker.join(5)
    assert got == [False]
