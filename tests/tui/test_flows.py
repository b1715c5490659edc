"""Whole flows driven by keys: capture a Windows-like loop disk into a real store, restore it
to another loop disk, then check the disks themselves, not only the screen."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, OptionList, SelectionList

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.devices import resolve_disk
from recovery.engine.safety import capture_refusals
from recovery.engine.storemounts import StoreMounts
from recovery.engine.storescan import NEW_STORE_DIR
from recovery.engine.table import compare_tables, read_table
from recovery.errors import SourceInUseError
from recovery.store.objects import ChunkStore
from recovery.sys import losetup, ntfs3g
from recovery.sys.blockdev import BlockDevice
from recovery.sys.mounts import read_mounts
from recovery.sys.run import run
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.capture import NEW_PLACE, CaptureWizard
from recovery.ui.tui.screens.dialogs import TypeToConfirmDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.restore import RestoreWizard
from recovery.ui.tui.screens.result import ResultScreen
from recovery.ui.tui.widgets.disk_table import DiskTable
from recovery.units import human_size
from tests.tui.conftest import SIZE, asynctest, wait_for

MiB = 1024 * 1024
DISK_SIZE = 400 * MiB  # the demo's GPT layout, shrunk: ESP, MSR, Windows, WinRE


@pytest.fixture
def windows_loop(tmp_path: Path, live_udev: None) -> Iterator[tuple[DemoDisk, Path]]:
    spec = DiskSpec(size=DISK_SIZE, windows_size=96 * MiB, data_bytes=16 * MiB)
    disk = build_windows_disk(tmp_path / "windows.img", spec)
    with losetup.loop_device(disk.path) as device:
        yield disk, device


def _empty_disk(path: Path, size: int) -> Iterator[Path]:
    """A loop device over a sparse file of `size` bytes, detached afterwards."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    with losetup.loop_device(path) as device:
        yield device


@pytest.fixture
def blank_loop(tmp_path: Path, live_udev: None) -> Iterator[Path]:
    yield from _empty_disk(tmp_path / "blank.img", DISK_SIZE + 8 * 1024 * 1024)


@pytest.fixture
def small_loop(tmp_path: Path, live_udev: None) -> Iterator[Path]:
    yield from _empty_disk(tmp_path / "small.img", DISK_SIZE // 2)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    ChunkStore.open(path, create=True)
    return path


def showing_result(app: RecoveryApp) -> bool:
    return isinstance(app.screen, ResultScreen) and bool(app.screen.query("#result-lines"))


async def _choose(pilot: Pilot[Any], options: OptionList, option_id: str) -> None:
    """Highlight the option `option_id` and press Enter: other helpers' stores on this
    shared machine may be listed too, so steer by id, not by position."""
    await pilot.press("home")
    for _ in range(options.option_count):
        if options.highlighted_option is not None and options.highlighted_option.id == option_id:
            break
        await pilot.press("down")
    assert options.highlighted_option is not None
    assert options.highlighted_option.id == option_id
    await pilot.press("enter")


async def _untick(pilot: Pilot[Any], picker: SelectionList[int], number: int) -> None:
    """Move to partition `number` in the partition list and press Space on it."""
    await pilot.press("home")
    for _ in range(picker.option_count):
        highlighted = picker.highlighted
        if highlighted is not None and picker.get_option_at_index(highlighted).value == number:
            break
        await pilot.press("down")
    await pilot.press("space")


async def open_capture_of(app: RecoveryApp, pilot: Pilot[Any], device: Path
                          ) -> CaptureWizard:
    """From home: the capture wizard, `device` chosen as the source, at the partitions."""
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                   and any(d.node == device for d in app.screen.disks), f"{device} listed")
    await pilot.press("c")
    wizard = app.screen
    assert isinstance(wizard, CaptureWizard)
    # Other loop devices may come and go on a shared machine: steer by key, not by count.
    table = wizard.query_one("#source-disks", DiskTable)
    await pilot.press("home")
    for _ in range(table.row_count):
        if table.selected_node() == device:
            break
        await pilot.press("down")
    assert table.selected_node() == device
    await pilot.press("enter")  # the source disk under the cursor
    await wait_for(pilot, lambda: wizard.step == 1, "the partition list")
    return wizard


async def _capture(app: RecoveryApp, pilot: Pilot[Any], device: Path, store: Path,
                   untick: tuple[int, ...] = (), wait_result: bool = True,
                   new_place: Path | None = None) -> None:
    """Capture `device` into `store`, or (`new_place`: a drive) into a new store on the
    first file system of that drive the store step offers."""
    wizard = await open_capture_of(app, pilot, device)
    picker = wizard.query_one("#partitions", SelectionList)
    for number in untick:
        await _untick(pilot, picker, number)
        assert number not in picker.selected
    await pilot.press("enter")  # boot, reserved and system are pre-selected
    assert wizard.step == 2
    # Stores other tests left mounted on a shared machine may be listed too: steer to ours.
    stores = wizard.query_one("#capture-stores", OptionList)
    if new_place is None:
        stores.highlighted = stores.get_option_index(str(store))
    else:
        def offered() -> int | None:
            return next((i for i in range(stores.option_count)
                         if (stores.get_option_at_index(i).id or "").startswith(NEW_PLACE)
                         and f" on {new_place.name}p1 " in
                         str(stores.get_option_at_index(i).prompt)), None)
        await wait_for(pilot, lambda: offered() is not None, f"a new store on {new_place}",
                       attempts=600)
        stores.highlighted = offered()
    await pilot.press("enter")  # the store
    await wait_for(pilot, lambda: wizard.step == 3, "the name step")
    await pilot.press("ctrl+a", "ctrl+k", *"win10-before-repair", "enter")
    assert wizard.step == 4
    await pilot.press("enter")  # "Start the capture"
    if wait_result:
        await wait_for(pilot, lambda: showing_result(app), "capture result",
                       attempts=600)


async def _to_targets(app: RecoveryApp, pilot: Pilot[Any], store: Path) -> RestoreWizard:
    """From the home screen: restore, `store`, its only image; every target checked."""
    await pilot.press("r")
    wizard = app.screen
    assert isinstance(wizard, RestoreWizard)
    await _choose(pilot, wizard.query_one("#restore-stores", OptionList), str(store))
    await pilot.press("enter")  # the only image
    await wait_for(pilot, lambda: wizard.targets_checked, "targets checked", attempts=1200)
    return wizard


@asynctest
async def test_capture_then_restore_to_another_disk(
        windows_loop: tuple[DemoDisk, Path], blank_loop: Path, small_loop: Path,
        store: Path, tmp_path: Path) -> None:
    disk, source = windows_loop
    log = ActionLog(tmp_path / "tui.log")
    app = RecoveryApp(Backend(opened_stores=[store]), log)
    async with app.run_test(size=SIZE) as pilot:
        await _capture(app, pilot, source, store)
        result = str(app.screen.query_one("#result-lines").render())
        assert "win10-before-repair" in result and "new" in result
        assert "every chunk is there and intact" in result
        images = ChunkStore.open(store).list_images()
        assert [(i.name, i.complete) for i in images] == [("win10-before-repair", True)]

        await pilot.press("enter")  # close the result
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home again")
        await pilot.press("r")
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        await _choose(pilot, wizard.query_one("#restore-stores", OptionList), str(store))
        # The capture's own check of the new image is recorded and shown in the image list.
        image_option = wizard.query_one("#images", OptionList).get_option("win10-before-repair")
        assert "[verified]" in str(image_option.prompt)
        await wait_for(pilot, lambda: "Last check: verified OK" in str(
            wizard.query_one("#image-details").render()), "the image's verification")
        await pilot.press("enter")  # the only image
        await wait_for(pilot, lambda: wizard.targets_checked, "targets checked",
                       attempts=1200)
        targets = [c.disk.node for c in wizard.candidates]
        assert source in targets and blank_loop in targets
        options = wizard.query_one("#targets", OptionList)
        small = options.get_option(str(small_loop))
        assert small.disabled and "Target disk is too small" in str(small.prompt)
        source_label = str(options.get_option(str(source)).prompt)
        assert "[source of this image]" in source_label  # shown literally, not as markup
        assert not wizard.candidates[targets.index(blank_loop)].refusals
        for _ in range(len(targets)):
            if options.highlighted_option and options.highlighted_option.id == str(blank_loop):
                break
            await pilot.press("down")
        await pilot.press("enter")
        assert wizard.step == 3
        assert not wizard.query_one("#delta").display  # not an earlier copy of this image
        await pilot.press("enter")  # "Overwrite this disk…"
        dialog = app.screen
        assert isinstance(dialog, TypeToConfirmDialog)
        await pilot.press(*"wrong", "enter")
        assert app.screen is dialog  # a wrong code does nothing
        assert isinstance(dialog, TypeToConfirmDialog)
        expected = human_size(DISK_SIZE + 8 * 1024 * 1024)  # loop disks have no serial
        assert dialog.expected == expected
        await pilot.press("ctrl+a", "ctrl+k", *expected, "enter")
        await wait_for(pilot, lambda: showing_result(app), "restore result",
                       attempts=600)
        result = str(app.screen.query_one("#result-lines").render())
        assert "read back from the disk, past the cache, and matches the image" in result

    with BlockDevice.open(source) as src, BlockDevice.open(blank_loop) as dst:
        assert compare_tables(read_table(src), read_table(dst)) == []
    system = disk.windows
    assert (ntfs3g.ntfsclone_image_hash(blank_loop, system.start, system.size)
            == ntfs3g.ntfsclone_image_hash(source, system.start, system.size))
    text = log.text()
    assert "capture finished" in text and "restore finished" in text


@asynctest
async def test_unticked_partition_is_left_out_though_its_role_is_captured(
        windows_loop: tuple[DemoDisk, Path], store: Path, tmp_path: Path) -> None:
    _disk, source = windows_loop
    app = RecoveryApp(Backend(opened_stores=[store]), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        # 2 is the MSR, 4 WinRE: both "reserved"; only the MSR is unticked.
        await _capture(app, pilot, source, store, untick=(2,))
        result = str(app.screen.query_one("#result-lines").render())
        assert "every chunk is there and intact" in result
    manifest, index = ChunkStore.open(store).load_image("win10-before-repair")
    assert [p.number for p in manifest.captured_partitions] == [1, 3, 4]
    assert [p.number for p in index.partitions] == [1, 3, 4]


@asynctest
async def test_delta_restore_offered_on_the_source_disk(
        windows_loop: tuple[DemoDisk, Path], store: Path, tmp_path: Path) -> None:
    disk, source = windows_loop
    app = RecoveryApp(Backend(opened_stores=[store]), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await _capture(app, pilot, source, store)
        before = ntfs3g.ntfsclone_image_hash(source, disk.windows.start, disk.windows.size)
        with BlockDevice.open(source, writable=True) as device:  # damage one used chunk
            device.write_at(disk.windows.start + 4096 * 100, b"\xff" * 4096)
            device.flush()
        await pilot.press("enter")
        wizard = await _to_targets(app, pilot, store)
        options = wizard.query_one("#targets", OptionList)
        assert options.highlighted_option is not None
        assert options.highlighted_option.id == str(source)  # the image's own disk first
        await pilot.press("enter")
        delta = wizard.query_one("#delta", Checkbox)
        assert delta.display and delta.value
        await pilot.press("enter")
        await pilot.press(*human_size(DISK_SIZE), "enter")
        await wait_for(pilot, lambda: showing_result(app), "restore result", attempts=600)
        result = str(app.screen.query_one("#result-lines").render())
        assert "read back from the disk, past the cache, and matches the image" in result
    assert ntfs3g.ntfsclone_image_hash(source, disk.windows.start,
                                       disk.windows.size) == before
    skipped = [line for line in result.splitlines() if "already in place" in line]
    assert skipped and not skipped[0].split("written, ")[1].startswith("0 ")


@asynctest
async def test_the_image_own_disk_is_suggested_when_checked_last_and_a_moved_cursor_stays(
        windows_loop: tuple[DemoDisk, Path], blank_loop: Path, store: Path,
        tmp_path: Path) -> None:
    """The target list is redrawn as each disk is checked: the image's own disk, checked
    after another, still gets the suggestion; a disk the technician moved to keeps it."""
    _disk, source = windows_loop
    app = RecoveryApp(Backend(opened_stores=[store]), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await _capture(app, pilot, source, store)
        await pilot.press("enter")
        wizard = await _to_targets(app, pilot, store)
        by_node = {str(c.disk.node): c for c in wizard.candidates}
        own, other = by_node[str(source)], by_node[str(blank_loop)]
        options = wizard.query_one("#targets", OptionList)

        def highlighted() -> str:
            assert options.highlighted_option is not None
            return str(options.highlighted_option.id)
        wizard.show_targets([other], 2)  # the other disk was checked first
        assert highlighted() == str(blank_loop)
        wizard.show_targets([other, own], 2)
        assert highlighted() == str(source)
        options.highlighted = 0  # the technician moves to the other disk
        wizard.show_targets([other, own], 2)
        assert highlighted() == str(blank_loop)


@asynctest
async def test_capture_refuses_a_store_on_the_source_disk(
        windows_loop: tuple[DemoDisk, Path], tmp_path: Path) -> None:
    disk, source = windows_loop
    mnt = tmp_path / "windows-c"
    mnt.mkdir()
    volume = disk.windows
    with ntfs3g.mount(disk.path, volume.start, mnt, True, size=volume.size) as root:
        store = root / "images"
        ChunkStore.open(store, create=True)
        app = RecoveryApp(Backend(opened_stores=[store]), ActionLog(tmp_path / "tui.log"))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                           and any(d.node == source for d in app.screen.disks), "disks")
            await pilot.press("c")
            wizard = app.screen
            assert isinstance(wizard, CaptureWizard)
            table = wizard.query_one("#source-disks", DiskTable)
            for _ in range(table.row_count):
                if table.selected_node() == source:
                    break
                await pilot.press("down")
            await pilot.press("enter")
            await wait_for(pilot, lambda: wizard.step == 1, "the partition list")
            await pilot.press("enter")  # partitions
            await _choose(pilot, wizard.query_one("#capture-stores", OptionList), str(store))
            assert wizard.step == 2  # refused: still choosing a store
            refusal = " ".join(str(wizard.query_one("#store-refusal").render()).split())
            # The engine's own refusal (the one `recovery capture` exits 37 with), not a
            # TUI copy of the rule: same title and advice, worded for the TUI.
            engine = capture_refusals(resolve_disk(source), store)
            assert [type(r) for r in engine] == [SourceInUseError]
            assert engine[0].title in refusal and engine[0].action in refusal
        assert not (store / "images").exists() or not any((store / "images").iterdir())


@pytest.fixture
def new_usb_drive(tmp_path: Path, live_udev: None) -> Iterator[Path]:
    """A USB drive as a technician brings it: one empty ext4 partition (node loopNp1, as
    sdb1), nobody has it mounted, no store on it yet."""
    image = tmp_path / "usb.img"
    with open(image, "wb") as handle:
        handle.truncate(128 * MiB)
    run(["sfdisk", "-q", str(image)], input_bytes=b"label: dos\n2048 - 83\n")
    with losetup.loop_device(image, offset=MiB, size=127 * MiB) as part:
        run(["mkfs.ext4", "-q", "-L", "NEWSTICK", str(part)])
    with losetup.loop_device(image) as device:
        losetup.add_partitions(device)
        run(["udevadm", "settle", "--timeout=30"], check=False)
        yield device


def _mounted_under(root: Path) -> list[tuple[str, str]]:
    """(mountpoint, rw/ro) of every mount under `root`."""
    return sorted((m.mountpoint, "ro" if os.statvfs(m.mountpoint).f_flag & os.ST_RDONLY
                   else "rw") for m in read_mounts() if m.mountpoint.startswith(str(root)))


@asynctest
async def test_first_capture_onto_a_new_drive_leaves_it_unmounted_and_listed(
        windows_loop: tuple[DemoDisk, Path], new_usb_drive: Path, tmp_path: Path) -> None:
    """The store step offers the empty file system; the capture creates the store there
    (mounted read-write under the mount root), the drive is unmounted when the job ends,
    and back home the normal scan lists the new store (mounted read-only to look)."""
    _disk, source = windows_loop
    root = tmp_path / "stores"
    log = ActionLog(tmp_path / "tui.log")
    mounts = StoreMounts(root, log=log.write, accept=lambda disk: disk.node == new_usb_drive)
    app = RecoveryApp(Backend(store_mounts=mounts, hotplug=False), log)
    store = root / f"{new_usb_drive.name}-1" / NEW_STORE_DIR
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _capture(app, pilot, source, store, new_place=new_usb_drive)
            result = str(app.screen.query_one("#result-lines").render())
            assert "every chunk is there and intact" in result
            # The job is over: nothing of ours is mounted read-write any more.
            assert ("rw" not in [mode for _point, mode in _mounted_under(root)]
                    ), _mounted_under(root)
            assert f"{store.parent} unmounted after writing" in log.text()
            await pilot.press("enter")  # close the result

            def listed() -> bool:
                screen = app.screen
                return isinstance(screen, HomeScreen) and any(
                    s.path == store for s in screen.stores)
            await wait_for(pilot, listed, f"the new store {store} on the home screen",
                           attempts=600)
            # Found again by the normal scan, which holds every store read-only.
            assert _mounted_under(root) == [(str(store.parent), "ro")]
            text = log.text()
            assert text.index(f"mounted read-only at {store.parent}") > text.index(
                f"{store.parent} unmounted after writing")
            images = ChunkStore.open(store).list_images()
            assert [(i.name, i.complete) for i in images] == [("win10-before-repair", True)]
            # Restoring from it: the source disk is offered, the store's drive is not.
            wizard = await _to_targets(app, pilot, store)
            targets = [c.disk.node for c in wizard.candidates]
            assert source in targets and new_usb_drive not in targets
    finally:
        mounts.close()
    assert _mounted_under(root) == []
