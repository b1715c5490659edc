"""Restore points through the TUI: open a Windows volume whose SYSTEM hive is corrupt, pick
the shadow-copy point, roll back, check the hive on the volume, then undo and check again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import blake3

from recovery.sys import ntfs3g
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.screens.dialogs import ConfirmDialog, PathPrompt
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.points import RestorePointsScreen
from recovery.ui.tui.screens.result import ResultScreen
from tests.conftest import unpack_hive
from tests.tui.conftest import SIZE, asynctest, recorded_app, wait_for
from tests.vsstool.builder import Snapshot, build_vss_volume

MiB = 1024 * 1024
CONFIG = "Windows/System32/config"


def broken_volume(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """SYSTEM corrupt now and good in the point; SAM the same in both."""
    good = unpack_hive("SYSTEM.xz", tmp_path).read_bytes()
    bad = unpack_hive("corrupted_system_hive.xz", tmp_path).read_bytes()
    sam = unpack_hive("SAM.xz", tmp_path).read_bytes()
    image = tmp_path / "windows-volume.img"
    work = tmp_path / "build"
    work.mkdir()
    point = Snapshot(datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
                     {f"{CONFIG}/SYSTEM": good, f"{CONFIG}/SAM": sam})
    build_vss_volume(image, 96 * MiB, [point],
                     {f"{CONFIG}/SYSTEM": bad, f"{CONFIG}/SAM": sam}, work)
    return image, good, bad


def system_hive_hash(image: Path, mountpoint: Path) -> str:
    with ntfs3g.mount(image, 0, mountpoint, False, size=image.stat().st_size) as root:
        return str(blake3.blake3((root / CONFIG / "SYSTEM").read_bytes()).hexdigest())


def digest(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())


@asynctest
async def test_rollback_then_undo_on_a_volume(tmp_path: Path) -> None:
    image, good, bad = broken_volume(tmp_path)
    mnt = tmp_path / "check"
    mnt.mkdir()
    app = recorded_app(ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, RestorePointsScreen)
        await pilot.press("end", "enter")  # "Open a volume … at a path…"
        assert isinstance(app.screen, PathPrompt)
        await pilot.press("ctrl+a", "ctrl+k", *str(image), "enter")
        await wait_for(pilot, lambda: screen.step == 1, "the list of points", attempts=600)
        assert screen.report is not None and len(screen.report.listing.points) == 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.step == 2, "the point's details", attempts=600)
        detail = str(screen.query_one("#point-detail").render())
        # The corrupt current SYSTEM is not diffed into "every service removed".
        assert "The current SYSTEM hive cannot be read: corrupt" in detail
        assert "a rollback puts back the point's copy" in detail
        assert "service removed since the point" not in detail
        # An unchanged hive is said to be so (tty1 showed "Diff SAM:" and nothing more).
        assert "SAM: the same as in the point" in detail, detail
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen)
                       and bool(app.screen.query("#result-lines")), "rollback result",
                       attempts=600)
        assert system_hive_hash(image, mnt) == digest(good)
        result = str(app.screen.query_one("#result-lines").render())
        assert "was rolled back to restore point vss-1 of 2024-03-01 09:30 UTC" in result
        assert "Put back from the point of 2024-03-01 09:30 UTC: SYSTEM" in result
        assert "Checked: every file written was read back" in result
        assert "press u (Undo) and choose the rollback of 20" in result
        assert "replaced:" not in result and "record" not in result

        await pilot.press("enter")  # close the result; back on the volume step
        await pilot.press("end", "enter", "ctrl+a", "ctrl+k", *str(image), "enter")
        await wait_for(pilot, lambda: screen.step == 1, "the list of points", attempts=600)
        await pilot.press("u")
        await wait_for(pilot, lambda: screen.step == 3, "earlier rollbacks", attempts=600)
        assert [r.state for r in screen.records] == ["applied"]
        await pilot.press("enter", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen)
                       and bool(app.screen.query("#result-lines")), "undo result",
                       attempts=600)
        result = str(app.screen.query_one("#result-lines").render())
        assert "The rollback of 20" in result and "was undone" in result
        assert "Put back as they were before it: SYSTEM" in result
    assert system_hive_hash(image, mnt) == digest(bad)
