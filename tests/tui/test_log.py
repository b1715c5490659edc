"""The log screen shows what was done and saves the log file into an image store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import RichLog

from recovery.errors import StoreError
from recovery.store.objects import ChunkStore
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.screens.dialogs import PathPrompt
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.log import LogScreen
from tests.tui.conftest import SIZE, asynctest, recorded_app, wait_for


def squeezed(text: str) -> str:
    return "".join(text.split())


async def log_shown(app: RecoveryApp, pilot: Pilot[Any]) -> str:
    """The log screen's text with its wrapping undone (all white space taken out)."""
    assert isinstance(app.screen, LogScreen)
    await pilot.pause(0.3)
    return squeezed("".join(line.text for line in app.screen.query_one(RichLog).lines))


@asynctest
async def test_log_is_shown_and_saved_to_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ChunkStore.open(store, create=True)
    log = ActionLog(tmp_path / "logs" / "tui-20261125.log")
    log.write("restore finished: image win10 -> WDC WD2500")
    app = recorded_app(log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await pilot.press("l")
        assert squeezed("restore finished: image win10") in await log_shown(app, pilot)
        await pilot.press("s")
        assert isinstance(app.screen, PathPrompt)
        await pilot.press("ctrl+a", "ctrl+k", *str(store), "enter")
        await wait_for(pilot, lambda: (store / "logs" / log.path.name).exists(), "saved log")
    saved = (store / "logs" / log.path.name).read_text()
    assert "restore finished: image win10" in saved and "recovery tui started" in saved


def test_saving_into_a_missing_store_says_what_to_do(tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "tui.log")
    with pytest.raises(StoreError, match=r"Could not save the log.*mounted"):
        log.save_to_store(tmp_path / "not-mounted" / "store")
