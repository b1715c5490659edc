"""Disk health in the TUI: the home list, the capture wizard's source step, and the restore
wizard's question before writing to a failing disk.

No disk here can fail, so the health comes from documents recorded from QEMU's emulated
disks and edited copies of them (tests/data/smartctl/README.md): the recorded machine's
disks get them through the Backend's health reader, the restore target (a real loop device)
through the engine's health reader, which the safety gate then judges for real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList

from recovery.demo.disk import DiskSpec, build_windows_disk
from recovery.engine import health as health_engine
from recovery.engine.capture import CaptureRequest, capture
from recovery.model.disk import Disk
from recovery.model.health import Health
from recovery.sys import losetup, smartctl
from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.capture import CaptureWizard
from recovery.ui.tui.screens.dialogs import ConfirmDialog, TypeToConfirmDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.restore import RestoreWizard
from recovery.ui.tui.screens.result import ResultScreen
from recovery.ui.tui.widgets.disk_table import DiskTable
from recovery.units import human_size
from tests.tui.conftest import HANDMADE, SIZE, asynctest, wait_for

MiB = 1024 * 1024
DATA = Path(__file__).resolve().parents[1] / "data" / "smartctl"


def recorded(name: str) -> Health:
    return smartctl.parse(json.loads((DATA / name).read_text()))


def handmade_health(disk: Disk, timeout: float) -> Health:
    return {"nvme0n1": recorded("edited-nvme-media-errors.json"),
            "sda": recorded("edited-sata-crc-reallocated-warning.json")}.get(
        disk.node.name, recorded("qemu-usb-a.json"))


@asynctest
async def test_home_and_capture_source_show_health(action_log: ActionLog) -> None:
    backend = Backend(udev_source=RecordedUdev(HANDMADE), health_reader=handmade_health)
    app = RecoveryApp(backend, action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen) and any(
            d.health.status == "failing" for d in app.screen.disks), "the disks' health")
        table = app.screen.query_one(DiskTable)
        assert str(table.get_row("disk:/dev/nvme0n1")[-1]).startswith("FAILING")
        assert str(table.get_row("disk:/dev/sda")[-1]).startswith("WARNING")
        assert "LIVE MEDIUM" in str(table.get_row("disk:/dev/sdb")[-1])
        table.move_cursor(row=table.get_row_index("disk:/dev/nvme0n1"))
        await pilot.pause()
        details = str(app.screen.query_one("#disk-details").render())
        assert "health FAILING: Overall self-assessment: FAILED" in details
        assert "Media and data integrity errors: 7" in details
        # The action log has each disk's health once, though every listing reads it again.
        await pilot.press("f5")
        await pilot.pause(1.0)
        logged = [line for line in action_log.text().splitlines() if "disk health:" in line]
        assert len([line for line in logged if "(/dev/nvme0n1): FAILING" in line]) == 1, logged
        assert len([line for line in logged if "(/dev/sda): WARNING" in line]) == 1, logged

        await pilot.press("c")
        wizard = app.screen
        assert isinstance(wizard, CaptureWizard)
        source = wizard.query_one("#source-disks", DiskTable)
        source.move_cursor(row=source.get_row_index("disk:/dev/nvme0n1"))
        await pilot.pause()
        warning = str(wizard.query_one("#source-health").render())
        assert "nvme0n1: health FAILING" in warning and "capture it first" in warning
        source.move_cursor(row=source.get_row_index("disk:/dev/sda"))
        await pilot.pause()
        assert "sda: health WARNING: Reallocated sectors: 4" in str(
            wizard.query_one("#source-health").render())


@pytest.fixture
def image_store(tmp_path: Path) -> tuple[Path, int]:
    spec = DiskSpec(size=400 * MiB, windows_size=96 * MiB, data_bytes=8 * MiB)
    disk = build_windows_disk(tmp_path / "windows.img", spec)
    store = tmp_path / "store"
    capture(CaptureRequest(disk.path, store, name="pc"))
    return store, spec.size


@pytest.fixture
def failing_loop(tmp_path: Path, live_udev: None, image_store: tuple[Path, int],
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A blank loop device that the engine's health reader calls failing."""
    path = tmp_path / "failing.img"
    with open(path, "wb") as handle:
        handle.truncate(image_store[1])
    with losetup.loop_device(path) as device:
        def reader(disk: Disk, timeout: float) -> Health:
            if disk.node == device:
                return recorded("edited-sata-pending-sectors.json")
            return Health.unknown("no SMART data: Unable to detect device type")
        monkeypatch.setattr(health_engine, "disk_health", reader)
        yield device


async def _restore_targets(app: RecoveryApp, pilot: Any, device: Path,
                           store: Path) -> RestoreWizard:
    """The restore wizard at its target step for the only image of `store`, offered only
    `device`: other test runs on this machine leave loop devices and stores around, and the
    wizard's checks are what is tested here, not how many disks and stores there are."""
    def listed() -> bool:
        return isinstance(app.screen, HomeScreen) and device in [d.node for d in app.screen.disks]
    await wait_for(pilot, listed, f"{device} listed")
    home = app.screen
    assert isinstance(home, HomeScreen)
    wizard = RestoreWizard([d for d in home.disks if d.node == device],
                           [s for s in home.stores if s.path == store])
    app.push_screen(wizard)
    await wait_for(pilot, lambda: app.screen is wizard, "the restore wizard")
    await pilot.press("enter", "enter")  # the store, its only image
    await wait_for(pilot, lambda: wizard.targets_checked, "targets checked", attempts=1200)
    return wizard


async def _choose_target(pilot: Any, wizard: RestoreWizard, device: Path) -> None:
    options = wizard.query_one("#targets", OptionList)
    options.highlighted = next(i for i, c in enumerate(wizard.candidates)
                               if c.disk.node == device)
    await pilot.press("enter")


@asynctest
async def test_restore_asks_before_writing_to_a_failing_disk(
        image_store: tuple[Path, int], failing_loop: Path, tmp_path: Path) -> None:
    store, size = image_store
    log = ActionLog(tmp_path / "tui.log")
    app = RecoveryApp(Backend(opened_stores=[store]), log)
    async with app.run_test(size=SIZE) as pilot:
        wizard = await _restore_targets(app, pilot, failing_loop, store)
        candidate = next(c for c in wizard.candidates if c.disk.node == failing_loop)
        assert candidate.refusals == () and "Current pending sectors: 12" in candidate.failing
        label = str(wizard.query_one("#targets", OptionList).get_option(
            str(failing_loop)).prompt)
        assert "is failing: Current pending sectors: 12" in label and "you will be asked" in label

        await _choose_target(pilot, wizard, failing_loop)
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog) and "Current pending sectors: 12" in \
            dialog.question
        await pilot.press("n")
        assert isinstance(app.screen, RestoreWizard)
        assert wizard.step == 2 and not wizard.allow_failing

        await _choose_target(pilot, wizard, failing_loop)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        assert isinstance(app.screen, RestoreWizard)
        assert wizard.step == 3 and wizard.allow_failing
        await pilot.press("enter")  # "Overwrite this disk…"
        assert isinstance(app.screen, TypeToConfirmDialog)
        await pilot.press(*human_size(size), "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen)
                       and bool(app.screen.query("#result-lines")), "restore result",
                       attempts=600)
        assert "matches the image (BLAKE3)" in str(app.screen.query_one("#result-lines").render())
    assert "technician chose the failing disk anyway" in log.text()
