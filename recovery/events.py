"""Typed progress events: the only channel from the engine to a shell (CLI, TUI, log).

Engine functions take an `EventSink` and call it; they never print. A shell renders events
as progress bars, log lines or TUI messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class PhaseStarted:
    """A named long step began; `total_bytes` is 0 when the size is not known."""

    phase: str
    description: str
    total_bytes: int = 0


@dataclass(frozen=True)
class ChunkTally:
    """Chunks handled so far in a capture: new ones stored, ones the store already had,
    all-zero ones (not stored at all)."""

    new: int
    reused: int
    zero: int = 0


@dataclass(frozen=True)
class Progress:
    phase: str
    done_bytes: int
    total_bytes: int
    chunks: ChunkTally | None = None  # set by phases that store chunks (capture)


@dataclass(frozen=True)
class PhaseFinished:
    phase: str
    seconds: float
    done_bytes: int = 0


@dataclass(frozen=True)
class Notice:
    """Something the technician should read: a warning about the disk, a skipped step."""

    message: str
    level: Literal["info", "warning"] = "info"


Event = PhaseStarted | Progress | PhaseFinished | Notice
EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An EventSink for callers that do not care about progress."""


@dataclass
class PhaseTracker:
    """Counts bytes for one phase and emits Progress at most every `interval` seconds."""

    sink: EventSink
    phase: str
    total_bytes: int
    interval: float = 0.2
    done_bytes: int = 0
    # Phases that store chunks attach their counter, so each Progress carries the tally.
    tally: Callable[[], ChunkTally] | None = None
    _last: float = field(default=0.0, repr=False)

    def advance(self, nbytes: int) -> None:
        self.done_bytes += nbytes
        now = time.monotonic()
        if now - self._last >= self.interval or self.done_bytes >= self.total_bytes:
            self._last = now
            chunks = self.tally() if self.tally is not None else None
            self.sink(Progress(self.phase, self.done_bytes, self.total_bytes, chunks))


@contextmanager
def phase(sink: EventSink, name: str, description: str, total_bytes: int = 0
          ) -> Iterator[PhaseTracker]:
    """Bracket a long step with PhaseStarted/PhaseFinished and hand out a byte counter."""
    started = time.monotonic()
    sink(PhaseStarted(name, description, total_bytes))
    tracker = PhaseTracker(sink, name, total_bytes)
    yield tracker
    sink(PhaseFinished(name, time.monotonic() - started, tracker.done_bytes))
