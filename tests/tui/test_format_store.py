"""A drive with no file system becomes a store from the capture wizard: its store step
offers to format it, the technician picks NTFS, types the drive's size (a loop device has
no serial), a wrong code is refused and leaves the drive untouched, then the capture goes
into the new store. And the default, exFAT, end to end: formatted, mounted read-write
(through exfat-fuse where the kernel has no exfat driver, as on this host; the live
image's kernel has one), captured into, verified by `recovery verify`, unmounted, and
clean for fsck.exfat. Real loop devices, mkntfs, ntfs-3g, exfatprogs and exfat-fuse; the
console app at 80x25."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from recovery.demo.disk import DemoDisk
from recovery.engine.storedrive import START
from recovery.engine.storemounts import StoreMounts
from recovery.engine.storescan import NEW_STORE_DIR
from recovery.store.objects import ChunkStore
from recovery.sys import losetup
from recovery.sys.run import run
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import ConsoleRecoveryApp, RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.capture import FORMAT, CaptureWizard
from recovery.ui.tui.screens.dialogs import ChoiceDialog, TypeToConfirmDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.units import human_size
from tests.tui.conftest import SIZE, asynctest, wait_for
from tests.tui.test_console_results import check_result, read_as_technician, says
from tests.tui.test_flows import (
    _mounted_under,
    open_capture_of,
    showing_result,
    windows_loop,  # noqa: F401 (fixture)
)

MiB = 1024 * 1024
BLANK_SIZE = 96 * MiB


@pytest.fixture
def blank_drive(tmp_path: Path, live_udev: None) -> Iterator[Path]:
    """A drive as it comes from the shop, or wiped: no partition table, no file system."""
    image = tmp_path / "new-drive.img"
    with open(image, "wb") as handle:
        handle.truncate(BLANK_SIZE)
    with losetup.loop_device(image) as device:
        run(["udevadm", "settle", "--timeout=30"], check=False)
        yield device


def signature(device: Path) -> bytes:
    """What blkid finds on the whole drive (nothing on a blank one)."""
    return run(["blkid", "-p", "-o", "export", str(device)], check=False).stdout


def console_app(tmp_path: Path, source: Path, drive: Path
                ) -> tuple[Path, ActionLog, StoreMounts, ConsoleRecoveryApp]:
    """The console app, mounting stores under its own root and looking only at `source`
    and `drive`."""
    root = tmp_path / "stores"
    log = ActionLog(tmp_path / "tui.log")
    mounts = StoreMounts(root, log=log.write, accept=lambda disk: disk.node in (drive, source))
    return root, log, mounts, ConsoleRecoveryApp(Backend(store_mounts=mounts, hotplug=False),
                                                 log)


def listed(app: RecoveryApp, store: Path) -> bool:
    """Home is on screen and lists `store`."""
    return isinstance(app.screen, HomeScreen) and any(s.path == store
                                                      for s in app.screen.stores)


async def to_store_step(app: RecoveryApp, pilot: Pilot[Any], source: Path,
                        drive: Path) -> CaptureWizard:
    """Capture `source`: its partitions as proposed, then the store step, once it offers to
    format `drive`."""
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen) and {source, drive}
                   <= {d.node for d in app.screen.disks}, "both disks listed", attempts=300)
    wizard = await open_capture_of(app, pilot, source)
    await pilot.press("enter")  # the partitions as proposed
    stores = wizard.query_one("#capture-stores", OptionList)

    def offered() -> int | None:
        return next((i for i in range(stores.option_count)
                     if (stores.get_option_at_index(i).id or "").startswith(FORMAT)
                     and f"/dev/{drive.name} " in str(stores.get_option_at_index(i).prompt)),
                    None)
    await wait_for(pilot, lambda: offered() is not None, f"formatting {drive} offered",
                   attempts=600)
    stores.highlighted = offered()
    return wizard


async def capture_named(app: RecoveryApp, pilot: Pilot[Any], wizard: CaptureWizard,
                        name: str) -> str:
    """From the name step: name the image, start the capture; the result screen's text,
    which says the image was read back whole."""
    await pilot.press("ctrl+a", "ctrl+k", *name, "enter")
    await wait_for(pilot, lambda: wizard.step == 4, "the summary")
    await pilot.press("enter")  # "Start the capture"
    await wait_for(pilot, lambda: showing_result(app), "capture result", attempts=900)
    result = await check_result(app, pilot)
    assert "every chunk is there and intact" in result, result
    return result


@asynctest
async def test_a_blank_drive_is_formatted_from_the_store_step_and_captured_into(
        windows_loop: tuple[DemoDisk, Path], blank_drive: Path,  # noqa: F811
        tmp_path: Path) -> None:
    _disk, source = windows_loop
    root, log, mounts, app = console_app(tmp_path, source, blank_drive)
    code = human_size(BLANK_SIZE)
    try:
        async with app.run_test(size=SIZE) as pilot:
            wizard = await to_store_step(app, pilot, source, blank_drive)
            assert "(erases it)" in read_as_technician(app)
            await pilot.press("enter")
            choice = app.screen
            assert isinstance(choice, ChoiceDialog)
            assert "NTFS" in read_as_technician(app) and "exFAT" in read_as_technician(app)
            await pilot.press("escape")  # changed their mind: nothing happens
            await wait_for(pilot, lambda: app.screen is wizard, "back on the store step")
            assert wizard.step == 2 and signature(blank_drive) == b""

            await pilot.press("enter")
            assert isinstance(app.screen, ChoiceDialog)
            await pilot.press("down", "enter")  # NTFS, the second choice
            dialog = app.screen
            assert isinstance(dialog, TypeToConfirmDialog)
            assert dialog.expected == code
            read_as_technician(app)  # every glyph of the warning reads on the console
            # The warning's own words: on screen, a long loop-file path wraps them at
            # different points (the box's borders would then sit between two words).
            text = " ".join(dialog.warning.split())
            assert "will be erased" in text and "formatted NTFS" in text, text
            await pilot.press(*"999.9 MB", "enter")  # not this drive's size
            await pilot.pause(0.3)
            assert app.screen is dialog
            assert f"does not match; type {code}" in " ".join(
                read_as_technician(app).split())
            assert signature(blank_drive) == b""  # refused: the drive is untouched
            await pilot.press("ctrl+a", "ctrl+k", *code, "enter")
            await wait_for(pilot, lambda: wizard.step == 3, "the name step", attempts=600)
            assert wizard.store is not None
            store = wizard.store.path
            assert store == root / f"{blank_drive.name}-1" / NEW_STORE_DIR
            result = await capture_named(app, pilot, wizard, "first-on-new-drive")
            assert says(result, f"in the store {store}"), result
            # The job is over: the new store's drive is not held read-write any more.
            assert "rw" not in [mode for _point, mode in _mounted_under(root)]
            await pilot.press("enter")  # close the result: home lists the new store
            await wait_for(pilot, lambda: listed(app, store), f"the new store {store} on home",
                           attempts=600)
            images = ChunkStore.open(store).list_images()
            assert [(i.name, i.complete) for i in images] == [("first-on-new-drive", True)]
    finally:
        mounts.close()
    assert _mounted_under(root) == []
    assert b"PTTYPE=" in signature(blank_drive)  # now partitioned
    text = log.text()
    assert "formatting " in text and f"({blank_drive}) as ntfs for a store" in text
    assert "on the formatted " in text and "capture finished" in text


@asynctest
async def test_a_blank_drive_formatted_exfat_by_default_is_captured_into_and_verified(
        windows_loop: tuple[DemoDisk, Path], blank_drive: Path,  # noqa: F811
        tmp_path: Path) -> None:
    _disk, source = windows_loop
    root, log, mounts, app = console_app(tmp_path, source, blank_drive)
    try:
        async with app.run_test(size=SIZE) as pilot:
            wizard = await to_store_step(app, pilot, source, blank_drive)
            await pilot.press("enter")
            assert isinstance(app.screen, ChoiceDialog)
            await pilot.press("enter")  # exFAT, the first choice (the default)
            assert isinstance(app.screen, TypeToConfirmDialog)
            assert "formatted exFAT" in " ".join(app.screen.warning.split())
            await pilot.press(*human_size(BLANK_SIZE), "enter")
            await wait_for(pilot, lambda: wizard.step == 3, "the name step", attempts=600)
            assert wizard.store is not None
            store = wizard.store.path
            assert store == root / f"{blank_drive.name}-1" / NEW_STORE_DIR
            # Held read-write on the drive being captured into (fuseblk: exfat-fuse).
            assert [mode for _point, mode in _mounted_under(root)] == ["rw"]
            result = await capture_named(app, pilot, wizard, "first-on-exfat")
            assert says(result, f"in the store {store}"), result
            # The read-write FUSE mount ended with the job (a rescan may mount it "ro").
            assert "rw" not in [mode for _point, mode in _mounted_under(root)]
            await pilot.press("enter")  # home: the scan mounts it read-only, lists it
            await wait_for(pilot, lambda: listed(app, store), f"the new store {store} on home",
                           attempts=600)
            assert [mode for _point, mode in _mounted_under(root)] == ["ro"]
            verified = subprocess.run(
                [sys.executable, "-m", "recovery", "verify", "--store", str(store),
                 "first-on-exfat"], capture_output=True, text=True, timeout=300, check=False)
            assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        mounts.close()
    assert _mounted_under(root) == []
    # Every loop device made over the drive's partition to mount it is gone again.
    image = tmp_path / "new-drive.img"
    assert run(["losetup", "-j", str(image)]).stdout.count(b"\n") == 1  # the drive's own
    with losetup.loop_device(blank_drive, offset=START, size=BLANK_SIZE - START,
                             read_only=True) as volume:
        fsck = run(["fsck.exfat", "-n", str(volume)], check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert b"clean" in fsck.stdout, fsck.stdout
    assert f"({blank_drive}) as exfat for a store" in log.text()
