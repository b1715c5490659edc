"""Writes the README's TUI screenshots (SVG, 80x25) into a folder:

    python3 -m tests.tui.screenshots docs/screenshots

Uses the recorded NVMe/SATA/USB machine for the home screen and real loop devices, a real
store and a real capture for the wizards. Needs root (loop devices) like the tests.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from recovery.demo.disk import DiskSpec, build_windows_disk
from recovery.engine.capture import CaptureRequest, capture
from recovery.events import ChunkTally, EventSink, Notice, PhaseStarted, Progress
from recovery.model.disk import Disk
from recovery.sys import losetup, udev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.job import JobScreen
from recovery.ui.tui.screens.restore import RestoreWizard
from tests.tui.conftest import SIZE, recorded_app

MiB = 1024 * 1024
Steps = Callable[[RecoveryApp, Pilot[Any]], Awaitable[None]]


async def _until(pilot: Pilot[Any], condition: Callable[[], bool]) -> None:
    for _ in range(600):
        if condition():
            break
        await pilot.pause(0.1)
    await pilot.pause(0.3)


async def shoot(app: RecoveryApp, steps: Steps, target: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, HomeScreen) and bool(
            app.screen.disks))
        await steps(app, pilot)
        app.save_screenshot(target.name, str(target.parent))


async def home(_app: RecoveryApp, pilot: Pilot[Any]) -> None:
    await pilot.press("down", "down", "down")


def demo_job(events: EventSink, cancel: threading.Event) -> int:
    """Paced like a real capture (250 MB/s) so rate and ETA read true."""
    total = 61_400 * MiB
    events(PhaseStarted("capture", "Capturing Samsung SSD 970 EVO Plus 500GB "
                        "(serial S4EVNX0N123456, NVMe, 500.1 GB)", total))
    events(Notice("Partition 3 (system): Windows is hibernated (Fast Startup) on this "
                  "volume.", "warning"))
    done = 0
    while not cancel.wait(0.1):
        done += 25 * 10**6
        chunks = done // (4 * MiB)  # a second capture of this PC: most chunks known already
        events(Progress("capture", done, total,
                        ChunkTally(new=chunks // 8, reused=chunks - chunks // 8 - 3, zero=3)))
    return 0


async def progress(app: RecoveryApp, pilot: Pilot[Any]) -> None:
    screen: JobScreen[int] = JobScreen("Capturing Samsung SSD 970 EVO Plus 500GB", demo_job,
                                       "capture", app.log_file)
    app.push_screen(screen)
    await pilot.pause(2.6)
    screen.repaint()
    await pilot.pause(0.2)
    screen.cancel_event.set()


async def capture_partitions(app: RecoveryApp, pilot: Pilot[Any], device: Path) -> None:
    await pilot.press("c")
    table = app.screen.query_one("#source-disks")
    for _ in range(20):
        if table.selected_node() == device:  # type: ignore[attr-defined]
            break
        await pilot.press("down")
    await pilot.press("enter")
    await _until(pilot, lambda: getattr(app.screen, "step", 0) == 1)


async def restore_targets(app: RecoveryApp, pilot: Pilot[Any]) -> None:
    await pilot.press("r", "enter", "enter")
    wizard = app.screen
    assert isinstance(wizard, RestoreWizard)
    await _until(pilot, lambda: wizard.targets_checked)


@dataclass
class OnlyTheseDisks(Backend):
    """The machine as the screenshots show it: only the disks made for them, whatever else
    (other test runs' loop devices) is attached to this host at the time."""

    only: tuple[Path, ...] = ()

    def disks(self) -> list[Disk]:
        return [disk for disk in super().disks() if disk.node in self.only]


def main(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    # A fixed, short path: it is on the screenshots (the store's folder).
    work = Path("/tmp/recovery-shots")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    log = ActionLog(work / "tui.log")
    asyncio.run(shoot(recorded_app(log), home, folder / "home.svg"))
    asyncio.run(shoot(recorded_app(log), progress, folder / "capture-progress.svg"))
    spec = DiskSpec(size=400 * MiB, windows_size=96 * MiB, data_bytes=16 * MiB)
    disk = build_windows_disk(work / "windows.img", spec)
    small = work / "small.img"
    with open(small, "wb") as handle:
        handle.truncate(200 * MiB)
    store = work / "store"
    devices = [losetup.attach(disk.path), losetup.attach(small)]
    try:
        udev.settle()
        capture(CaptureRequest(source=devices[0], store=store, name="win10-before-repair"))
        app = RecoveryApp(OnlyTheseDisks(opened_stores=[store], hotplug=False,
                                         only=tuple(devices)), log)
        asyncio.run(shoot(app, lambda a, p: capture_partitions(a, p, devices[0]),
                          folder / "capture-partitions.svg"))
        app = RecoveryApp(OnlyTheseDisks(opened_stores=[store], hotplug=False,
                                         only=tuple(devices)), log)
        asyncio.run(shoot(app, restore_targets, folder / "restore-targets.svg"))
    finally:
        for device in devices:
            losetup.detach(device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
