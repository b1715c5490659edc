"""The TUI's explorer at 80x25: store -> image -> partition -> folders; mark a folder, copy
it out with the progress screen, compare every file; list the image's restore points."""

from __future__ import annotations

from pathlib import Path

from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.dialogs import PathPrompt
from recovery.ui.tui.screens.explore import ExploreScreen
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.result import ResultScreen
from tests.explore.conftest import CapturedPc
from tests.tui.conftest import HANDMADE, SIZE, asynctest, wait_for


@asynctest
async def test_browse_mark_and_copy_out(ro_store: Path, pc: CapturedPc,
                                        tmp_path: Path) -> None:
    app = RecoveryApp(Backend(udev_source=RecordedUdev(HANDMADE), opened_stores=[ro_store]),
                      ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                       and bool(app.screen.stores), "home with the store")
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, ExploreScreen)
        await pilot.press("enter")  # the store
        await wait_for(pilot, lambda: screen.step == 1, "the images")
        await pilot.press("enter")  # image "first"
        assert screen.step == 2
        await pilot.press("enter")  # the Windows volume is pre-selected
        await wait_for(pilot, lambda: screen.step == 3 and bool(screen.entries), "root")
        assert [e.name for e in screen.entries] == ["Compressed", "Deep", "Many", "Users",
                                                    "empty.txt"]
        await pilot.press("down", "down", "down", "enter")  # Users
        await wait_for(pilot, lambda: screen.folder == "/Users", "/Users")
        await pilot.press("enter")  # Bob
        await wait_for(pilot, lambda: screen.folder == "/Users/Bob", "/Users/Bob")
        await pilot.press("space", "space")  # Documents and Pictures
        assert sorted(screen.marked) == ["/Users/Bob/Documents", "/Users/Bob/Pictures"]
        await pilot.press("x")
        assert isinstance(app.screen, PathPrompt)
        dest = tmp_path / "copied"
        await pilot.press("ctrl+a", "ctrl+k", *str(dest), "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the result",
                       attempts=600)
        result = str(app.screen.query_one("#result-lines").render())
        assert "Extracted 7 files and 2 folders" in result
        await pilot.press("enter")
        await pilot.press("backspace")
        await wait_for(pilot, lambda: screen.folder == "/Users", "back up")
        await pilot.press("escape", "escape")  # up to the root, then the partition list
        await wait_for(pilot, lambda: screen.step == 2, "the partition list")
        await pilot.press("down", "enter")  # restore points inside partition 2
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "points",
                       attempts=600)
        assert "0 restore point(s) inside" in str(app.screen.query_one("#result-lines")
                                                   .render())
    for name, data in pc.ntfs_files.items():
        if name.startswith(("Users/Bob/Documents/", "Users/Bob/Pictures/")):
            assert (dest / name.removeprefix("Users/Bob/")).read_bytes() == data, name
