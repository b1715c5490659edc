"""The TUI's explorer at 80x25: store -> image -> partition -> folders; mark a folder, copy
it out with the progress screen, compare every file; list the image's restore points."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from recovery.engine.storemounts import StoreMounts
from recovery.engine.storescan import locate
from recovery.sys.mount import mounted_range
from recovery.sys.mounts import read_mounts
from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.dialogs import ChoiceDialog, PathPrompt
from recovery.ui.tui.screens.explore import ExploreScreen
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.result import ResultScreen
from tests.explore.conftest import CapturedPc
from tests.tui.conftest import HANDMADE, SIZE, asynctest, wait_for
from tests.usbdrive import MiB


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
        await pilot.press("x")  # no drive plugged in: straight to the typed folder
        await wait_for(pilot, lambda: isinstance(app.screen, PathPrompt), "the folder prompt")
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


@asynctest
async def test_copy_out_onto_a_usb_drive_nobody_mounted(ro_store: Path, pc: CapturedPc,
                                                       usb_drive: Path,
                                                       store_mounts: StoreMounts,
                                                       tmp_path: Path) -> None:
    """The drive is offered by its partitions (not the store being read); the copy mounts
    the chosen one read-write, the files land in recovered-IMAGE, and the drive is
    unmounted afterwards (it can be unplugged)."""
    app = RecoveryApp(Backend(store_mounts=store_mounts, hotplug=False,
                              opened_stores=[ro_store]), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        screen = ExploreScreen([locate(ro_store)], ro_store)
        await app.push_screen(screen)
        await pilot.press("enter")  # the store
        await wait_for(pilot, lambda: screen.step == 1, "the images")
        await pilot.press("enter", "enter")  # image "first", its Windows volume
        await wait_for(pilot, lambda: screen.step == 3 and bool(screen.entries), "root")
        await pilot.press("down", "down", "down", "enter")  # Users
        await wait_for(pilot, lambda: screen.folder == "/Users", "/Users")
        await pilot.press("enter")  # Bob
        await wait_for(pilot, lambda: screen.folder == "/Users/Bob", "/Users/Bob")
        await pilot.press("space")  # Documents
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), "where to")
        offered = {place.partition.number: index  # other test runs' disks may be here
                   for index, place in enumerate(screen.destinations)
                   if place.disk.node == usb_drive}
        assert set(offered) == {1, 2, 3}  # ext4 and NTFS, with or without a store
        choices = app.screen.query_one("#choices", OptionList)
        choices.highlighted = offered[3]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultScreen), "the result",
                       attempts=600)
        result = str(app.screen.query_one("#result-lines").render())
        assert "recovered-first" in result and "unmounted" in result
        root = store_mounts.root / f"{usb_drive.name}-3"
        assert not any(m.mountpoint == str(root) for m in read_mounts())
    with mounted_range(usb_drive, 133120 * 512, 24 * MiB, "ext4", tmp_path / "check",
                       read_write=False) as copy:
        for name, data in pc.ntfs_files.items():
            if name.startswith("Users/Bob/Documents/"):
                written = copy / "recovered-first" / name.removeprefix("Users/Bob/")
                assert written.read_bytes() == data, name
