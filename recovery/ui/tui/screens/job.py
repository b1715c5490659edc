"""Runs one engine call in a worker thread and shows its progress until it ends.

The engine reports through an EventSink; the sink posts each event as a message (safe from
any thread) and a timer repaints twice a second, so elapsed time and ETA stay alive even
while the engine is silent. Cancel asks first, then sets the threading.Event the engine
polls; the engine stops cleanly and raises CancelledError.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label, ProgressBar, Static

from recovery.errors import CancelledError, RecoveryError
from recovery.events import Event, EventSink
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.progress_model import ProgressModel, format_duration
from recovery.ui.tui.screens.dialogs import ConfirmDialog
from recovery.ui.tui.wording import tui_action
from recovery.ui.tui.workers import as_recovery_error
from recovery.units import human_rate, human_size

if TYPE_CHECKING:
    from recovery.ui.tui.tuiapp import TuiApp

T = TypeVar("T")
Job = Callable[[EventSink, threading.Event], T]
log = logging.getLogger("recovery.tui")


@dataclass
class JobOutcome(Generic[T]):
    result: T | None = None
    error: RecoveryError | None = None

    @property
    def cancelled(self) -> bool:
        return isinstance(self.error, CancelledError)


class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class JobScreen(Screen[JobOutcome[T]]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,c", "cancel", "Cancel")]

    def __init__(self, title: str, job: Job[T], what: str, log: ActionLog,
                 hold: contextlib.AbstractContextManager[object] | None = None) -> None:
        super().__init__()
        self.log_file = log
        self.job_title = title
        self.job = job
        self.what = what  # "capture", "restore", ... for the cancel question
        # The machine's job lock (Backend.hold_job), held while the engine thread runs.
        self.hold = hold or contextlib.nullcontext()
        self.cancel_event = threading.Event()
        self.finished = threading.Event()  # set when the engine thread has returned
        self.quit_when_done = False
        self.model = ProgressModel()

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    def stop(self, quit_after: bool = False) -> None:
        """Ask the engine to stop (it polls cancel_event); with `quit_after`, the app
        leaves once the engine thread has returned."""
        self.quit_when_done = self.quit_when_done or quit_after
        self.cancel_event.set()
        if self.is_mounted:
            self.repaint()

    def compose(self) -> ComposeResult:
        with Vertical(id="job"):
            yield Label(self.job_title, classes="screen-title", markup=False)
            yield Static("Starting…", id="phase", markup=False)
            yield ProgressBar(id="bar", show_eta=False)
            yield Static("", id="numbers", markup=False)
            yield Static("", id="chunks", markup=False)
            yield Static("", id="notices", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(0.5, self.repaint)
        self.run_job()

    @work(thread=True, exclusive=True, group="engine")
    def run_job(self) -> None:
        app = self.app  # taken first: see recovery.ui.tui.workers.shown_errors
        outcome: JobOutcome[T]
        try:
            with self.hold:
                outcome = JobOutcome(result=self.job(self._sink, self.cancel_event))
        except Exception as exc:  # any failure must reach the technician, not kill the UI
            if not isinstance(exc, RecoveryError):
                log.error("the %s failed: %r", self.what, exc, exc_info=exc)
            outcome = JobOutcome(error=as_recovery_error(exc, f"the {self.what}"))
        finally:
            self.finished.set()
        app.call_from_thread(self.finish, outcome)

    def finish(self, outcome: JobOutcome[T]) -> None:
        # A job can end before the screen's first paint; leaving earlier upsets Textual.
        self.call_after_refresh(self._leave, outcome)

    def _leave(self, outcome: JobOutcome[T]) -> None:
        if self.quit_when_done:
            self.log_file.write(f"the {self.what} stopped; leaving as asked")
            self.app.exit()
            return
        # Not awaited: awaiting our own dismissal from our own message pump deadlocks.
        self.dismiss(outcome)

    def _sink(self, event: Event) -> None:
        self.post_message(EngineEvent(event))

    def on_engine_event(self, message: EngineEvent) -> None:
        self.model.apply(message.event)

    def repaint(self) -> None:
        model = self.model
        status = "Cancelling… " if self.cancel_event.is_set() else ""
        self.query_one("#phase", Static).update(
            f"{status}{model.description or model.phase or 'Preparing…'}")
        bar = self.query_one("#bar", ProgressBar)
        bar.update(total=model.total_bytes or None, progress=model.done_bytes)
        elapsed = format_duration(model.elapsed())
        if model.total_bytes:
            numbers = (f"{human_size(model.done_bytes)} of {human_size(model.total_bytes)}   "
                       f"{human_rate(model.rate())}   elapsed {elapsed}   "
                       f"ETA {format_duration(model.eta_seconds())}")
        else:  # a step whose size is not known beforehand: say so, not "0 B of ?"
            done = f"{human_size(model.done_bytes)} so far, " if model.done_bytes else ""
            numbers = f"Working on it ({done}size not known in advance)   elapsed {elapsed}"
        self.query_one("#numbers", Static).update(numbers)
        self.query_one("#chunks", Static).update(model.chunk_line())
        self.query_one("#notices", Static).update(
            "\n".join(f"{level}: {text}" for level, text in model.notices[-5:]))

    def action_cancel(self) -> None:
        if self.cancel_event.is_set():
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self.stop()
        self.app.push_screen(ConfirmDialog(
            f"Stop the {self.what}? What was done so far stays safe; the {self.what} "
            "will be incomplete.", yes_label="Stop"), answered)


def settle(app: TuiApp, outcome: JobOutcome[T] | None, what: str) -> T | None:
    """The result of a finished job, or None after telling the technician why there is none
    (error dialog with the engine's own words; a cancel only gets a note)."""
    if outcome is None:
        return None
    if outcome.error is not None:
        if outcome.cancelled:
            app.log_file.error(outcome.error)
            app.notify(f"The {what} was cancelled. {tui_action(outcome.error)}".strip(),
                       severity="warning")
        else:
            app.show_error(outcome.error)
        return None
    return outcome.result
