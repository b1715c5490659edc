"""The progress screen: engine events become phase, bytes, rate; cancel asks, then stops the
job through the threading.Event the engine polls."""

from __future__ import annotations

import threading
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Static

from recovery.errors import CancelledError
from recovery.events import ChunkTally, EventSink, PhaseStarted, Progress
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.screens.dialogs import ConfirmDialog
from recovery.ui.tui.screens.job import JobOutcome, JobScreen
from tests.tui.conftest import SIZE, asynctest, wait_for

MB = 10**6


class JobHost(App[None]):
    """A bare app that runs one JobScreen and keeps its outcome."""

    def __init__(self, job: JobScreen[int]) -> None:
        super().__init__()
        self.job = job
        self.outcome: JobOutcome[int] | None = None

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        self.push_screen(self.job, self.keep)

    def keep(self, outcome: JobOutcome[int] | None) -> None:
        self.outcome = outcome


def stoppable_job(reached: threading.Event) -> object:
    """Like the engine: reports progress, polls `cancel`, raises CancelledError."""
    def job(events: EventSink, cancel: threading.Event) -> int:
        events(PhaseStarted("capture", "Capturing Test Disk", 100 * MB))
        events(Progress("capture", 40 * MB, 100 * MB, ChunkTally(7, 3, 2)))
        reached.set()
        if cancel.wait(timeout=120):
            raise CancelledError("Capture of Test Disk was stopped.", "Run it again to resume.")
        return 1
    return job


@asynctest
async def test_progress_shows_phase_and_bytes_then_cancel_stops_the_job(
        tmp_path: Path) -> None:
    reached = threading.Event()
    screen: JobScreen[int] = JobScreen("Capturing Test Disk", stoppable_job(reached),  # type: ignore[arg-type]
                                       "capture", ActionLog(tmp_path / "tui.log"))
    app = JobHost(screen)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, reached.is_set, "the job to report progress")
        await wait_for(pilot, lambda: "40.0 MB of 100.0 MB" in str(
            screen.query_one("#numbers", Static).render()), "the byte counter")
        assert "Capturing Test Disk" in str(screen.query_one("#phase", Static).render())
        assert "7 new, 3 reused" in str(screen.query_one("#chunks", Static).render())
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # changed my mind: the job goes on
        assert not screen.cancel_event.is_set()
        await pilot.press("escape", "y")
        await wait_for(pilot, lambda: app.outcome is not None, "the job to stop")
    assert app.outcome is not None and app.outcome.cancelled
