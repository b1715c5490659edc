"""A store the home screen finds only after a wizard opened (it had to mount the drive to
look at it) still reaches that wizard's store list: the wizard once kept the list it was
opened with, empty if home's listing had not ended yet."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from textual.widgets import OptionList

from recovery.engine.storescan import StoreLocation
from recovery.model.disk import Disk
from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.restore import RestoreWizard
from recovery.ui.tui.screens.verify import VerifyScreen
from tests.tui.conftest import HANDMADE, SIZE, asynctest, wait_for


@dataclasses.dataclass
class SlowLookBackend(Backend):
    """Mounted stores: none. Stores on unmounted drives: `late`, once `found` is set."""

    late: list[StoreLocation] = dataclasses.field(default_factory=list)
    found: threading.Event = dataclasses.field(default_factory=threading.Event)

    def stores(self, disks: list[Disk], look_unmounted: bool = True) -> list[StoreLocation]:
        if not look_unmounted:
            return []
        self.found.wait(30)
        return list(self.late)


def _store_ids(options: OptionList) -> list[str]:
    return [str(options.get_option_at_index(i).id) for i in range(options.option_count)]


@asynctest
async def test_a_store_found_after_the_wizard_opened_is_offered_there(tmp_path: Path) -> None:
    late = StoreLocation(tmp_path / "stick" / "recovery-images", 8 * 2**30, "USB stick")
    backend = SlowLookBackend(udev_source=RecordedUdev(HANDMADE), late=[late])
    app = RecoveryApp(backend, ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query("#stores")), "the home screen")
        await pilot.pause(0.5)  # home's first listing (mounted stores only) is shown
        await pilot.press("r")
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        options = wizard.query_one("#restore-stores", OptionList)
        assert _store_ids(options) == []  # the listing has not ended yet
        backend.found.set()
        await wait_for(pilot, lambda: _store_ids(options) == [str(late.path)],
                       "the store found after the wizard opened")
        assert options.highlighted == 0
        await pilot.press("escape")
        await pilot.press("v")  # a wizard opened after the listing ended has it at once
        assert isinstance(app.screen, VerifyScreen)
        assert _store_ids(app.screen.query_one("#verify-stores", OptionList)) == [
            str(late.path)]
