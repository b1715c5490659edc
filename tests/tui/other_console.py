"""The other console of tests/tui/test_two_consoles.py: a whole TUI in its own process (as
`recovery tui` on ttyS0 beside tty1), restoring the store's only image onto TARGET through
the restore wizard; the engine is held at its first progress event until a line arrives on
stdin. Prints "writing" once the restore writes and "done" with the result screen's text.

    python3 -m tests.tui.other_console STORE TARGET
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.restore import RestoreWizard
from recovery.units import human_size
from tests.tui.conftest import SIZE, wait_for
from tests.tui.test_flows import showing_result
from tests.tui.test_jobs import PausedBackend


async def restore(store: Path, target: Path, size: int) -> str:
    backend = PausedBackend(target, opened_stores=[store], hotplug=False)
    app = RecoveryApp(backend, ActionLog(Path(tempfile.mkdtemp()) / "ttyS0.log"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                       and bool(app.screen.stores), "home with the store", attempts=600)
        await pilot.press("r", "enter", "enter")  # restore: the store, its only image
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        await wait_for(pilot, lambda: wizard.targets_checked, "targets checked",
                       attempts=1200)
        await pilot.press("enter", "enter")  # the only disk offered; "Overwrite…"
        await pilot.press(*human_size(size), "enter")
        await wait_for(pilot, backend.writing.is_set, "the restore to write", attempts=1200)
        print("writing", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        backend.go_on.set()
        await wait_for(pilot, lambda: showing_result(app), "the restore result",
                       attempts=3000)
        return " ".join(str(app.screen.query_one("#result-lines").render()).split())


if __name__ == "__main__":
    target = Path(sys.argv[2])
    result = asyncio.run(restore(Path(sys.argv[1]), target, int(sys.argv[3])))
    print("done", result, flush=True)
