"""Screens at 80x25 as a technician sees them, compared with accepted SVG snapshots
(pytest --snapshot-update rewrites them after a deliberate change). A recorded machine keeps
the disk list identical on every host."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.worker import get_current_worker

from recovery.engine.storescan import StoreLocation
from recovery.errors import TargetTooSmallError
from recovery.events import ChunkTally, EventSink, Notice, PhaseStarted, Progress
from recovery.store.objects import ChunkStore
from recovery.store.verified import Verification
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.progress_model import ProgressModel
from recovery.ui.tui.screens.dialogs import ConfirmDialog, ErrorDialog, TypeToConfirmDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.job import JobScreen
from recovery.ui.tui.screens.restore import Candidate, RestoreWizard
from tests.tui.conftest import SIZE, recorded_app
from tests.unit.test_store import CHUNK, write_image

MB = 10**6

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


# --- progress and restore screens ----------------------------------------------------------
def _capture_model() -> ProgressModel:
    """A capture 40 s in, 1.2 of 3.0 GB done at 30 MB/s, as the engine's events leave it."""
    model = ProgressModel(clock=lambda: 140.0, started_at=100.0)
    model.apply(Notice("Partition 3 (system): Windows was hibernated (Fast Startup).",
                       "warning"), now=100.0)
    model.apply(PhaseStarted("capture", "Capturing nvme0n1", 3000 * MB), now=100.0)
    for second in range(1, 41):
        model.apply(Progress("capture", second * 30 * MB, 3000 * MB,
                             ChunkTally(new=second * 6, reused=second, zero=2)),
                    now=100.0 + second)
    return model


def test_progress_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    def job(events: EventSink, cancel: threading.Event) -> int:
        # Stays running while the screen is photographed; the app's exit cancels the worker.
        worker = get_current_worker()
        while not worker.is_cancelled and not cancel.wait(0.05):
            pass
        return 0

    async def show_progress(pilot: Pilot[Any]) -> None:
        await _home_ready(pilot)
        screen: JobScreen[int] = JobScreen("Capturing Samsung SSD 970 EVO Plus 500GB", job,
                                           "capture", ActionLog(tmp_path / "job.log"))
        await pilot.app.push_screen(screen)
        screen.model = _capture_model()
        screen.repaint()
        await pilot.pause()

    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=show_progress)


@pytest.fixture
def image_store(tmp_path: Path) -> Path:
    """Two images with fixed times: one verified, one whose check failed."""
    store = ChunkStore.open(tmp_path / "store", create=True)
    for name, ok in (("office-pc-2026-11", True), ("office-pc-before-update", False)):
        write_image(store, name)
        store.record_verification(name, Verification(
            checked="2026-11-25T16:05:00Z", ok=ok, problems=0 if ok else 2, chunks_checked=3,
            bytes_checked=3 * CHUNK, tool_version="0.1.0"))
    return store.root


def _restore_wizard(store: Path) -> Callable[[Pilot[Any]], Any]:
    async def open_wizard(pilot: Pilot[Any]) -> None:
        await _home_ready(pilot)
        home = pilot.app.screen
        assert isinstance(home, HomeScreen)
        await pilot.app.push_screen(RestoreWizard(home.disks, [StoreLocation(store, 0, "")]))
        await pilot.press("enter")  # the store
        await pilot.pause()
    return open_wizard


def test_restore_image_step(snap_compare: SnapCompare, tmp_path: Path,
                            image_store: Path) -> None:
    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=_restore_wizard(image_store))


def test_restore_target_step(snap_compare: SnapCompare, tmp_path: Path,
                             image_store: Path) -> None:
    async def show_targets(pilot: Pilot[Any]) -> None:
        await _restore_wizard(image_store)(pilot)
        wizard = pilot.app.screen
        assert isinstance(wizard, RestoreWizard)
        # The targets as the engine's safety gate judged them (the recorded machine's disks
        # cannot be opened here, so the verdicts are given).
        wizard.image = wizard.images[0]
        wizard.goto(2)
        disks = [d for d in wizard.disks if not d.holds_live_medium]
        verdicts = [Candidate(disks[0], None, ()),
                    Candidate(disks[1], None, (
                        "Target disk is too small: image needs 256.1 GB, WDC WD2500AAKX has "
                        "250.1 GB. Choose a larger disk.",))]
        wizard.show_targets(verdicts, len(verdicts))
        await pilot.pause()

    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=show_targets)


# --- the other screens reached from home -------------------------------------------------
@pytest.mark.parametrize("key", ["v", "p"], ids=["verify", "restore-points"])
def test_screen_opened_from_home(snap_compare: SnapCompare, tmp_path: Path, key: str) -> None:
    async def open_screen(pilot: Pilot[Any]) -> None:
        await _home_ready(pilot)
        await pilot.press(key)
        await pilot.pause(0.3)

    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    assert snap_compare(app, terminal_size=SIZE, run_before=open_screen)
