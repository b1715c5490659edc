"""Screens at 80x25 as a technician sees them, compared with accepted SVG snapshots
(pytest --snapshot-update rewrites them after a deliberate change). A recorded machine keeps
the disk list identical on every host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from recovery.errors import TargetTooSmallError
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.screens.dialogs import ConfirmDialog, ErrorDialog, TypeToConfirmDialog
from recovery.ui.tui.screens.home import HomeScreen
from tests.tui.conftest import SIZE, recorded_app

SnapCompare = Callable[..., bool]


async def _home_ready(pilot: Pilot[Any]) -> None:
    for _ in range(100):
        screen = pilot.app.screen
        if isinstance(screen, HomeScreen) and screen.disks:
            break
        await pilot.pause(0.05)
    await pilot.pause()


def test_home(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=_home_ready)


def test_capture_source_step(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def open_capture(pilot: Pilot[Any]) -> None:
        await _home_ready(pilot)
        await pilot.press("c")
        await pilot.pause()

    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=open_capture)


def _with_dialog(dialog: Any) -> Callable[[Pilot[Any]], Any]:
    async def push(pilot: Pilot[Any]) -> None:
        await _home_ready(pilot)
        await pilot.app.push_screen(dialog)
        await pilot.pause()
    return push


def test_error_dialog(snap_compare: SnapCompare, tmp_path: Path) -> None:
    error = TargetTooSmallError(
        "Target disk is too small: image needs 256.1 GB, WDC WD2500AAKX (serial "
        "WD-WCC2EXA12345, SATA, 250.1 GB) has 250.1 GB.", "Choose a larger disk.")
    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=_with_dialog(ErrorDialog(error)))


def test_type_to_confirm_dialog(snap_compare: SnapCompare, tmp_path: Path) -> None:
    dialog = TypeToConfirmDialog(
        "Everything on Samsung SSD 970 EVO Plus 500GB (serial S4EVNX0N123456, NVMe, "
        "500.1 GB) will be overwritten with image 'win10-before-repair'.",
        "Type the last 4 characters of the serial (S4EVNX0N123456):", "3456")
    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=_with_dialog(dialog))


def test_power_off_question(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=_with_dialog(
        ConfirmDialog("Power off the PC now?", yes_label="Poweroff")))
