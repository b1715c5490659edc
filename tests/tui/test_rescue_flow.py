"""The capture wizard on a failing disk (faultyfs + loop): a read error ends the normal
capture, rescue mode is offered, and the result screen names the damaged files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyfsntfs
import pytest

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.model.disk import Disk
from recovery.model.health import Health
from recovery.store.objects import ChunkStore
from recovery.sys import losetup
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.capture import is_failing
from recovery.ui.tui.screens.dialogs import ConfirmDialog
from recovery.units import KiB, MiB, human_size
from tests.faults.faultyfs import Fault, FaultyMount, faulty_mount
from tests.tui.conftest import SIZE, asynctest, wait_for
from tests.tui.test_flows import _capture, showing_result

DAMAGED = "\\Windows\\System32\\config\\SYSTEM"


@pytest.fixture
def failing_loop(tmp_path: Path, live_udev: None
                 ) -> Iterator[tuple[DemoDisk, FaultyMount, Path]]:
    spec = DiskSpec(size=400 * MiB, windows_size=96 * MiB, data_bytes=16 * MiB)
    disk = build_windows_disk(tmp_path / "windows.img", spec)
    with faulty_mount(disk.path, tmp_path / "faulty") as faulty, \
            losetup.loop_device(faulty.disk) as device:
        yield disk, faulty, device


def _inside(disk: DemoDisk, path: str) -> int:
    """A disk offset 4 KiB-aligned in the middle of `path`'s first extent."""
    with BlockDevice.open(disk.path) as device:
        volume = pyfsntfs.volume()
        volume.open_file_object(DeviceSlice(device, disk.windows.start, disk.windows.size))
        offset, size, _ = volume.get_file_entry_by_path(path).get_extent(0)
        volume.close()
    return int(disk.windows.start + offset + size // 2 // (4 * KiB) * (4 * KiB))


@asynctest
async def test_read_error_offers_rescue_and_the_result_names_the_damaged_file(
        failing_loop: tuple[DemoDisk, FaultyMount, Path], tmp_path: Path) -> None:
    disk, faulty, source = failing_loop
    bad = _inside(disk, DAMAGED)
    faulty.arm(Fault("read", bad, bad + 4 * KiB))
    store = tmp_path / "store"
    ChunkStore.open(store, create=True)
    app = RecoveryApp(Backend(opened_stores=[store]), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await _capture(app, pilot, source, store, wait_result=False)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog),
                       "rescue offered", attempts=600)
        assert "I/O error" in str(app.screen.query_one("#question").render())
        await pilot.press("y")
        await wait_for(pilot, lambda: showing_result(app), "rescue result", attempts=600)
        result = str(app.screen.query_one("#result-lines").render())
        assert f"{human_size(4 * KiB)} could not be read" in result, result
        assert DAMAGED in result and "file-data" in result, result
        assert "unreadable areas" in str(app.screen.query_one("#result-title").render())
    assert "rescue mode" in (tmp_path / "tui.log").read_text()
    manifest = ChunkStore.open(store).load_image("win10-before-repair")[0]
    assert manifest.unreadable_bytes == 4 * KiB


def test_rescue_is_preselected_for_a_disk_in_warning_or_failing_health() -> None:
    disk = Disk(stable_id="ata-X", node=Path("/dev/sdz"), model="m", serial="X", wwn="",
                bus="sata", size=1 << 30, logical_sector_size=512, physical_sector_size=512,
                removable=False, read_only=False)
    assert is_failing(replace(disk, health=Health("failing")))
    assert is_failing(replace(disk, health=Health("warning")))
    assert not is_failing(replace(disk, health=Health("ok")))
    assert not is_failing(disk)  # not checked yet


@asynctest
async def test_unreadable_table_sectors_plan_a_rescue_that_uses_the_backup_gpt(
        failing_loop: tuple[DemoDisk, FaultyMount, Path], tmp_path: Path) -> None:
    # LBA 0 and the primary GPT do not read: the wizard plans as a rescue does (the table
    # from the backup GPT), ticks rescue mode, and the result names the lost disk areas.
    _disk, faulty, source = failing_loop
    faulty.arm(Fault("read", 0, 34 * 512))
    store = tmp_path / "store"
    ChunkStore.open(store, create=True)
    app = RecoveryApp(Backend(opened_stores=[store]), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await _capture(app, pilot, source, store, wait_result=False)
        await wait_for(pilot, lambda: showing_result(app), "rescue result", attempts=600)
        result = str(app.screen.query_one("#result-lines").render())
        assert "disk area primary-gpt" in result and "the backup GPT was used" in result, \
            result
    assert "rescue mode" in (tmp_path / "tui.log").read_text()
    manifest = ChunkStore.open(store).load_image("win10-before-repair")[0]
    assert manifest.table_copy == "backup" and manifest.unreadable_bytes == 34 * 512
