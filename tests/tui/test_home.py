"""Home screen: disks from udev (recorded and live), stores, hot-plug, actions."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from textual.widgets import Static

from recovery.demo.disk import DiskSpec, build_windows_disk
from recovery.sys import losetup, udev
from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.dialogs import ConfirmDialog, ErrorDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.widgets.disk_table import DiskTable
from tests.fsbuild import BuiltVolume, write_hiberfil
from tests.tui.conftest import HANDMADE, SIZE, asynctest, recorded_app, wait_for

MiB = 1024 * 1024


def table_keys(app: RecoveryApp) -> list[str]:
    table = app.screen.query_one(DiskTable)
    return [str(row.key.value) for row in table.ordered_rows]


@asynctest
async def test_recorded_machine_lists_disks_partitions_and_live_medium(
        action_log: ActionLog) -> None:
    app = recorded_app(action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                       and bool(app.screen.disks), "the disk list")
        keys = table_keys(app)
        assert "disk:/dev/nvme0n1" in keys and "part:/dev/nvme0n1:3" in keys
        assert "disk:/dev/sda" in keys
        table = app.screen.query_one(DiskTable)
        live_row = table.get_row("disk:/dev/sdb")
        assert "LIVE MEDIUM" in str(live_row[-1])
        # The live system's own squashfs loop device is not a disk to work on.
        assert not any("loop" in key for key in keys), keys
        assert table.get_row("part:/dev/nvme0n1:3")[2] == "Windows"
        await pilot.press("down", "down", "down")
        details = str(app.screen.query_one("#disk-details").render())
        assert "/mnt/windows" in details


@asynctest
async def test_hotplugged_loop_disk_appears_and_disappears(
        tmp_path: Path, live_udev: None) -> None:
    image = tmp_path / "usb-stick.img"
    image.write_bytes(b"")
    with open(image, "r+b") as handle:
        handle.truncate(64 * 1024 * 1024)
    app = RecoveryApp(Backend(), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")
        # Disks listed at start-up are not "appeared": attach only once the first list is
        # on screen (this machine has at least its own system disk).
        await wait_for(pilot, lambda: bool(app.screen.disks), "the first disk list")  # type: ignore[attr-defined]
        device = losetup.attach(image)
        try:
            await wait_for(pilot, lambda: f"disk:{device}" in table_keys(app),
                           f"{device} to appear")
            disk = next(d for d in app.screen.disks if d.node == device)  # type: ignore[attr-defined]
            assert disk.backing_file == image
        finally:
            losetup.detach(device)
        await wait_for(pilot, lambda: f"disk:{device}" not in table_keys(app),
                       f"{device} to disappear")
    # Device events reach the log as what changed on screen, not one line per event.
    logged = app.log_file.text()
    # The loop device may be listed before losetup has set its file and size (a busy
    # machine): the line names the device, whatever it knew of it then.
    assert re.search(rf"disk appeared: .*\({re.escape(str(device))}\)\n", logged), logged
    assert f"disk gone: {disk.describe()} ({device})" in logged
    assert "udev:" not in logged


@asynctest
async def test_open_store_at_path(tmp_path: Path, action_log: ActionLog) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "recovery-store.yaml").write_text("format: 1\n")
    app = recorded_app(action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")
        await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "stores"
        await pilot.press("enter")  # the only entry: "Open a store at a path…"
        await pilot.press("ctrl+a", "ctrl+k", *str(store), "enter")
        home = app.screen
        assert isinstance(home, HomeScreen)
        await wait_for(pilot, lambda: any(s.path == store for s in home.stores),
                       "the opened store in the list")


@asynctest
async def test_open_store_refuses_a_plain_directory(tmp_path: Path,
                                                    action_log: ActionLog) -> None:
    app = recorded_app(action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")
        await pilot.press("a", "ctrl+a", "ctrl+k", *str(tmp_path), "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog), "error dialog")
        assert "recovery-store.yaml" in str(app.screen.error)  # type: ignore[attr-defined]
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


@asynctest
async def test_power_off_asks_first_and_only_then_runs(action_log: ActionLog) -> None:
    requested: list[str] = []
    # The one stand-in in these tests: powering off the test machine is not an option.
    backend = Backend(udev_source=RecordedUdev(HANDMADE), power=requested.append)
    app = RecoveryApp(backend, action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")
        await pilot.press("o")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")  # the default answer is No
        assert requested == []
        await pilot.press("o", "y")
        assert requested == ["poweroff"]
        await pilot.press("b", "n")
        assert requested == ["poweroff"]
    assert "poweroff requested" in action_log.text()


@asynctest
async def test_partition_warnings_from_the_volume_probe(tmp_path: Path,
                                                        live_udev: None) -> None:
    spec = DiskSpec(size=400 * MiB, windows_size=96 * MiB, data_bytes=4 * MiB)
    demo = build_windows_disk(tmp_path / "hibernated.img", spec)
    windows = demo.windows
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    write_hiberfil(BuiltVolume(demo.path, windows.start, windows.size), mnt, b"HIBR")
    app = RecoveryApp(Backend(), ActionLog(tmp_path / "tui.log"))
    device = losetup.attach(demo.path)
    try:
        losetup.add_partitions(device)  # this kernel has no partition parser for loops
        udev.settle()
        async with app.run_test(size=SIZE) as pilot:
            key = f"part:{device}:{windows.number}"
            await wait_for(pilot, lambda: key in table_keys(app) and bool(
                app.screen.query_one(DiskTable).get_row(key)[-1]), "the probed partition",
                attempts=300)
            notes = str(app.screen.query_one(DiskTable).get_row(key)[-1])
            assert "Windows" in notes and "hibernated" in notes
    finally:
        losetup.detach(device)


@asynctest
async def test_home_screen_is_drawn_before_the_engine_is_loaded(action_log: ActionLog) -> None:
    """On the live image the engine's imports take seconds: the technician must see the
    home screen first, then the disks when the Backend is ready."""
    release = threading.Event()
    built: list[Backend] = []

    def slow_backend() -> Backend:
        release.wait(30)
        built.append(Backend(udev_source=RecordedUdev(HANDMADE)))
        return built[0]

    app = RecoveryApp(slow_backend, action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")
        details = app.screen.query_one("#disk-details", Static)
        assert "Looking for disks" in str(details.render()) and not built
        release.set()
        await wait_for(pilot, lambda: "disk:/dev/nvme0n1" in table_keys(app), "the disks")
        assert len(built) == 1
