"""Result screens and the action log on the Linux console (TERM=linux, 80x25), as a
technician reads them after real jobs on loop devices: every glyph in the console font (code
page 437, the poorest, or a deliberate fallback), no text in its background colour, nothing
cut off or scrolled out of sight, and sentences rather than dumps of Python values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import RichLog

from recovery.demo.disk import DemoDisk
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import ConsoleRecoveryApp, RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.console import FALLBACKS, cp437
from recovery.ui.tui.screens.dialogs import PathPrompt, TypeToConfirmDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.log import LogScreen
from recovery.ui.tui.screens.points import RestorePointsScreen
from recovery.ui.tui.screens.result import ResultScreen
from recovery.units import human_size
from tests.tui.conftest import SIZE, asynctest, wait_for
from tests.tui.test_console import console_app, screen_text, unreadable_cells
from tests.tui.test_flows import (  # noqa: F401 (fixtures)
    DISK_SIZE,
    _capture,
    _to_targets,
    blank_loop,
    showing_result,
    store,
    windows_loop,
)
from tests.tui.test_log import squeezed
from tests.tui.test_points import broken_volume

# What a dump of Python values looks like: a list's repr (of strings or numbers), a bare
# boolean or None after a colon or an equals sign, an undo record's raw id.
DUMP = re.compile(r"\['|\[\d+(,\s*\d+)*\]|': |[:=] ?(True|False|None)\b|record: \d{8}T")


def read_as_technician(app: RecoveryApp) -> str:
    """The screen as text, after checking it reads on the console."""
    text = screen_text(app)
    font = cp437()
    unknown = {c for c in text if c not in font and c != "\n" and c not in FALLBACKS}
    assert not unknown, f"no console glyph for {sorted(unknown)}:\n{text}"
    assert unreadable_cells(app) == {}, unreadable_cells(app)
    return text


def says(text: str, phrase: str) -> bool:
    """Whether the screen shows the phrase, compared without white space: the screen wraps a
    word longer than its width (a store's path under CI's /tmp/pytest-of-root/...) in the
    middle of the word."""
    return "".join(phrase.split()) in "".join(text.split())


async def check_result(app: RecoveryApp, pilot: Pilot[Any]) -> str:
    await pilot.pause(0.3)  # drawn once
    screen = app.screen
    assert isinstance(screen, ResultScreen)
    text = read_as_technician(app)
    scroll = screen.query_one(VerticalScroll)
    assert scroll.max_scroll_y == 0, f"the result does not fit {SIZE}:\n{text}"
    flat = " ".join(text.split())
    for line in screen.lines:
        assert says(text, line), f"not shown whole: {line!r}\n{text}"
    assert not DUMP.search(flat), text
    return flat


def check_log(app: RecoveryApp) -> str:
    """The action log screen: read on the console, no line running past the screen's edge
    (the file's lines are 28 columns of date, time and level, then the message)."""
    assert isinstance(app.screen, LogScreen)
    text = read_as_technician(app)
    view = app.screen.query_one(RichLog)
    assert view.max_scroll_x == 0, f"log lines wider than the screen:\n{text}"
    shown = squeezed("".join(line.text for line in view.lines))
    assert "PosixPath(" not in shown and not DUMP.search(shown), shown
    # Actions and tools, not SMART looks repeated at every disk listing.
    assert squeezed("run: smartctl") not in shown, text
    return shown


async def close_result(app: RecoveryApp, pilot: Pilot[Any]) -> None:
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, ResultScreen), "result closed")


@asynctest
async def test_console_capture_and_restore_results_read_as_sentences(
        windows_loop: tuple[DemoDisk, Path], blank_loop: Path, store: Path,  # noqa: F811
        tmp_path: Path) -> None:
    _disk, source = windows_loop
    log = ActionLog(tmp_path / "tui.log")
    app = ConsoleRecoveryApp(Backend(opened_stores=[store]), log)
    async with app.run_test(size=SIZE) as pilot:
        await _capture(app, pilot, source, store)
        capture = await check_result(app, pilot)
        assert "was captured as the image win10-before-repair" in capture
        await close_result(app, pilot)
        wizard = await _to_targets(app, pilot, store)
        wizard.query_one("#targets").highlighted = next(  # type: ignore[attr-defined]
            i for i, c in enumerate(wizard.candidates) if c.disk.node == blank_loop)
        await pilot.press("enter")
        await wait_for(pilot, lambda: wizard.step == 3, "what will be lost")
        assert "Enter: overwrite" in read_as_technician(app)
        await pilot.press("enter")
        assert isinstance(app.screen, TypeToConfirmDialog)
        read_as_technician(app)
        await pilot.press(*human_size(DISK_SIZE + 8 * 1024 * 1024), "enter")
        await wait_for(pilot, lambda: showing_result(app), "restore result", attempts=600)
        restore = await check_result(app, pilot)
        assert "was restored onto" in restore and str(blank_loop) in restore
        assert "read back from the disk" in restore and "Next: " in restore
        await close_result(app, pilot)
        await pilot.press("l")
        await pilot.pause(0.5)
        shown = check_log(app)
    for action in ("capture started:", "capture finished: The disk", "restore started:",
                   "restore finished: The image win10-before-repair was restored onto"):
        assert squeezed(action) in shown, action
    assert ").; " not in log.text()  # the result's sentences, joined as sentences


@asynctest
async def test_console_rollback_and_undo_results_read_as_sentences(tmp_path: Path) -> None:
    image, _good, _bad = broken_volume(tmp_path)
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, RestorePointsScreen)
        await pilot.press("end", "enter")
        assert isinstance(app.screen, PathPrompt)
        await pilot.press("ctrl+a", "ctrl+k", *str(image), "enter")
        await wait_for(pilot, lambda: screen.step == 1, "the list of points", attempts=600)
        read_as_technician(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.step == 2, "the point's details", attempts=600)
        read_as_technician(app)
        await pilot.press("r")
        read_as_technician(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: showing_result(app), "rollback result", attempts=600)
        rollback = await check_result(app, pilot)
        # Which hives came back from which date, checked, and how to undo, in words.
        assert ("rolled back to restore point vss-1 of 2024-03-01 09:30 UTC" in rollback
                and "Put back from the point of 2024-03-01 09:30 UTC: SYSTEM" in rollback
                and "read back from the volume" in rollback), rollback
        made = re.search(r"choose the rollback of (\S+ \S+ UTC)", rollback)
        assert made, rollback
        await close_result(app, pilot)
        await pilot.press("end", "enter", "ctrl+a", "ctrl+k", *str(image), "enter")
        await wait_for(pilot, lambda: screen.step == 1, "the list of points", attempts=600)
        await pilot.press("u")
        await wait_for(pilot, lambda: screen.step == 3, "earlier rollbacks", attempts=600)
        # The undo list names the rollback the way the result told the technician.
        assert f"Rollback of {made.group(1)} to point vss-1" in read_as_technician(app)
        await pilot.press("enter")
        assert made.group(1) in read_as_technician(app)  # the question names it too
        await pilot.press("y")
        await wait_for(pilot, lambda: showing_result(app), "undo result", attempts=600)
        undone = await check_result(app, pilot)
        assert f"The rollback of {made.group(1)} (to point vss-1)" in undone, undone
        await close_result(app, pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await pilot.press("l")
        await pilot.pause(0.5)
        shown = check_log(app)
    for action in ("rollback started: Rolling back to vss-1 on", "rollback finished",
                   "undo started: Undoing the rollback of", "undo finished"):
        assert squeezed(action) in shown, action
