"""Fixtures for driving the TUI: a log in tmp, recorded machines, live udev, waiting helpers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec

import pytest
from textual.pilot import Pilot

from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend

UDEV_DATA = Path(__file__).resolve().parents[1] / "data" / "udev"
HANDMADE = UDEV_DATA / "handmade-nvme-sata-usb.json"
SIZE = (80, 25)
P = ParamSpec("P")
HANG_LIMIT_SECONDS = 60


def asynctest(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async Pilot test on its own event loop (no pytest async plugin needed).

    A hung flow must fail the test run, not stall it: the whole test gets a generous limit.
    """
    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), HANG_LIMIT_SECONDS))
    return run


@pytest.fixture
def action_log(tmp_path: Path) -> ActionLog:
    return ActionLog(tmp_path / "logs" / "tui.log")


def recorded_app(log: ActionLog, record: Path = HANDMADE) -> RecoveryApp:
    return RecoveryApp(Backend(udev_source=RecordedUdev(record)), log)


def _composed(app: Any) -> bool:
    if not app.is_running or not app.screen_stack:
        return True  # nothing left to compose: the condition is about the app's end
    return bool(app.screen.is_mounted)


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool],
                   what: str, attempts: int = 200) -> None:
    """Let the app run until `condition` holds and the screen on top is composed (a screen
    just pushed has no widgets to query yet); fail naming `what` if it never does."""
    for _ in range(attempts):
        if condition() and _composed(pilot.app):
            return
        await pilot.pause(0.1)
    screen = pilot.app.screen
    shown = " | ".join(str(w.render()) for w in screen.query("Static, Label"))[:1500]
    raise AssertionError(f"timed out waiting for {what}; on {type(screen).__name__}: {shown}")
