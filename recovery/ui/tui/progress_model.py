"""What the progress screen shows, computed from engine events: phase, bytes, rate, ETA,
and for a capture how many chunks were new and how many the store already had.

Kept apart from the widgets so the arithmetic is testable without a terminal. The rate is
measured over a sliding window because a restore's first seconds (partition table, small
areas) say nothing about how fast the bulk copy runs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from recovery.events import (
    ChunkTally,
    Event,
    Notice,
    PhaseFinished,
    PhaseStarted,
    Progress,
)

RATE_WINDOW_SECONDS = 5.0


@dataclass
class FinishedPhase:
    phase: str
    seconds: float
    done_bytes: int


@dataclass
class ProgressModel:
    phase: str = ""
    description: str = ""
    done_bytes: int = 0
    total_bytes: int = 0
    chunks: ChunkTally | None = None
    # Injectable so a snapshot of the progress screen shows the same times on every run.
    clock: Callable[[], float] = time.monotonic
    started_at: float = -1.0  # -1: when the model is made
    phase_started_at: float = -1.0
    finished: list[FinishedPhase] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)
    _samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.started_at < 0:
            self.started_at = self.phase_started_at = self.clock()

    def apply(self, event: Event, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if isinstance(event, PhaseStarted):
            self.phase, self.description = event.phase, event.description
            self.done_bytes, self.total_bytes = 0, event.total_bytes
            self.phase_started_at = now
            self._samples.clear()
            self._samples.append((now, 0))
        elif isinstance(event, Progress):
            if event.phase != self.phase:
                self.phase = event.phase
                self._samples.clear()
            self.done_bytes, self.total_bytes = event.done_bytes, event.total_bytes
            if event.chunks is not None:
                self.chunks = event.chunks
            self._samples.append((now, event.done_bytes))
            while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_SECONDS:
                self._samples.popleft()
        elif isinstance(event, PhaseFinished):
            self.finished.append(FinishedPhase(event.phase, event.seconds, event.done_bytes))
            if event.phase == self.phase:
                self.done_bytes = max(self.done_bytes, event.done_bytes)
        elif isinstance(event, Notice):
            self.notices.append((event.level, event.message))

    def rate(self) -> float:
        """Bytes per second over the last few seconds of the current phase (0 if unknown)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def eta_seconds(self) -> float | None:
        rate = self.rate()
        if rate <= 0 or self.total_bytes <= 0:
            return None
        return max(0.0, (self.total_bytes - self.done_bytes) / rate)

    def fraction(self) -> float | None:
        if self.total_bytes <= 0:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)

    def elapsed(self, now: float | None = None) -> float:
        return (self.clock() if now is None else now) - self.started_at

    def chunk_line(self) -> str:
        """'Chunks: 120 new, 36 reused, 4 all-zero' during a capture, else ''."""
        if self.chunks is None:
            return ""
        tally = self.chunks
        return (f"Chunks: {tally.new} new, {tally.reused} reused (already in the store), "
                f"{tally.zero} all-zero")


def format_duration(seconds: float | None) -> str:
    """'1:02:03' / '2:03' as a technician reads a countdown; '--:--' when unknown."""
    if seconds is None:
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
