"""Rate, ETA and phase bookkeeping of the progress screen, fed with engine events."""

from __future__ import annotations

from recovery.events import ChunkTally, Notice, PhaseFinished, PhaseStarted, Progress
from recovery.ui.tui.progress_model import ProgressModel, format_duration

MB = 10**6


def test_rate_and_eta_follow_progress_events() -> None:
    model = ProgressModel(started_at=100.0)
    model.apply(PhaseStarted("capture", "Capturing disk", 1000 * MB), now=100.0)
    model.apply(Progress("capture", 100 * MB, 1000 * MB), now=101.0)
    model.apply(Progress("capture", 300 * MB, 1000 * MB), now=102.0)
    assert model.rate() == 150 * MB
    assert model.eta_seconds() == 700 / 150
    assert model.fraction() == 0.3
    assert model.elapsed(now=112.0) == 12.0


def test_rate_window_forgets_a_slow_start() -> None:
    model = ProgressModel()
    model.apply(PhaseStarted("restore", "Restoring", 10_000 * MB), now=0.0)
    model.apply(Progress("restore", 1 * MB, 10_000 * MB), now=10.0)  # slow table writes
    for second in range(11, 20):
        model.apply(Progress("restore", (second - 10) * 200 * MB, 10_000 * MB), now=second)
    assert 190 * MB < model.rate() < 210 * MB


def test_unknown_total_gives_no_eta_and_new_phase_resets() -> None:
    model = ProgressModel()
    model.apply(PhaseStarted("table", "Reading partition table", 0), now=0.0)
    model.apply(Progress("table", 10, 0), now=1.0)
    assert model.eta_seconds() is None and model.fraction() is None
    model.apply(PhaseFinished("table", 1.0, 10), now=1.0)
    model.apply(PhaseStarted("verify", "Reading back", 50), now=2.0)
    assert (model.phase, model.done_bytes, model.rate()) == ("verify", 0, 0.0)
    assert model.finished[0].phase == "table"


def test_notices_are_kept_with_their_level() -> None:
    model = ProgressModel()
    model.apply(Notice("Windows is hibernated", "warning"))
    assert model.notices == [("warning", "Windows is hibernated")]


def test_durations_read_like_a_clock() -> None:
    assert format_duration(None) == "--:--"
    assert format_duration(65) == "1:05"
    assert format_duration(3725.4) == "1:02:05"


def test_chunk_tally_is_kept_from_the_latest_progress_event() -> None:
    model = ProgressModel(clock=lambda: 5.0)
    assert model.chunk_line() == "" and model.elapsed() == 0.0
    model.apply(PhaseStarted("capture", "Capturing disk", 100 * MB))
    model.apply(Progress("capture", 10 * MB, 100 * MB, ChunkTally(2, 1, 0)))
    model.apply(Progress("capture", 20 * MB, 100 * MB, ChunkTally(4, 1, 1)))
    model.apply(Progress("capture", 30 * MB, 100 * MB))  # a phase without chunks
    assert model.chunks == ChunkTally(4, 1, 1)
    assert model.chunk_line().startswith("Chunks: 4 new, 1 reused")
