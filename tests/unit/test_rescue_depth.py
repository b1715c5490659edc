"""The rescue's first-pass read depth: deep while reads come back fast, shallow when they
slow down, none (one read at a time, by the first pass itself) after an error or a slow
read, until the first pass says the disk reads well again."""

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
    assert depth.enter()
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
    _finish(depth, SLOW / 2)  # a long queue on a slow disk, not yet a slow read
    assert depth.limit == 8
    _finish(depth, SLOW / 6)  # between an eighth and a quarter: unchanged
    assert depth.limit == 8


def test_an_error_or_a_slow_read_stops_the_workers_until_resumed() -> None:
    for seconds, failed in ((0.01, True), (SLOW + 1, False)):
        depth = _ReadDepth(SLOW)
        _finish(depth, seconds, failed)
        assert depth.limit == 0 and not depth.enter()
        depth.resume()
        assert depth.limit == START_DEPTH and depth.enter()


def test_a_worker_waits_for_a_place_and_gives_up_when_the_disk_fails() -> None:
    depth = _ReadDepth(SLOW)
    for _ in range(START_DEPTH):
        assert depth.enter()
    got: list[bool] = []
    waiting = threading.Thread(target=lambda: got.append(depth.enter()))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive()  # every place is taken
    depth.leave(_read(0.01, failed=True))
    waiting.join(5)
    assert got == [False]
