"""The home screen lists a store on a partition nobody mounted (the engine's StoreMounts
mounts it to look; tests/usbdrive.py builds the drive)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import OptionList

from recovery.engine.storemounts import StoreMounts
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.home import HomeScreen
from tests.tui.conftest import SIZE, asynctest, wait_for


@asynctest
async def test_home_screen_lists_a_store_nobody_mounted(usb_drive: Path, store_mounts: StoreMounts,
                                                        tmp_path: Path) -> None:
    app = RecoveryApp(Backend(store_mounts=store_mounts, hotplug=False),
                      ActionLog(tmp_path / "tui.log"))
    wanted = str(store_mounts.root / f"{usb_drive.name}-1")
    async with app.run_test(size=SIZE) as pilot:
        def listed(pilot: Any = pilot) -> bool:
            screen = app.screen
            if not isinstance(screen, HomeScreen):
                return False
            options = screen.query_one("#stores", OptionList)
            return any(options.get_option_at_index(i).id == wanted
                       for i in range(options.option_count))
        await wait_for(pilot, listed, f"the store at {wanted}", attempts=600)
