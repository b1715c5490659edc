"""What the progress screen shows, computed from engine events: phase, bytes, rate, ETA.

Kept apart from the widgets so the arithmetic is testable without a terminal. The rate is
measured over a sliding window because a restore's first seconds (partition table, small
areas) say nothing about how fast the bulk copy runs.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from recovery.events import Event, Notice, PhaseFinished, PhaseStarted, Progress

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
    started_at: float = field(default_factory=time.monotonic)
    phase_started_at: float = field(default_factory=time.monotonic)
    finished: list[FinishedPhase] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)
    _samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def apply(self, event: Event, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
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
        return (time.monotonic() if now is None else now) - self.started_at


def format_duration(seconds: float | None) -> str:
    """'1:02:03' / '2:03' as a technician reads a countdown; '--:--' when unknown."""
    if seconds is None:
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
