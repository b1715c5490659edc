"""A rescue capture of a volume whose used-block map does not read (faultyfs + loop): the
plan captures all of it, the re-check at execute (issue #12's "written since the plan")
does not mistake a weak sector that reads this time for a write, a map that read at plan
but not at execute is refused as unconfirmable, and an unreadable boot sector no longer
ends the plan."""

from __future__ import annotations

import os
from pathlib import Path

import pyfsntfs
import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, execute_capture, plan_capture
from recovery.errors import DiskChangedError
from recovery.store.objects import ChunkStore
from recovery.sys import ntfs3g
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.units import MiB
from tests.faults.conftest import LoopFactory, MountFactory, copy_disk
from tests.faults.faultyfs import Fault
from tests.faults.test_rescue import _cli


def _bitmap(disk: DemoDisk) -> tuple[int, int]:
    """The first 4 KiB of the Windows volume's $Bitmap, as disk offsets."""
    windows = disk.windows
    with BlockDevice.open(disk.path) as device:
        volume = pyfsntfs.volume()
        volume.open_file_object(DeviceSlice(device, windows.start, windows.size))
        try:
            offset = volume.get_file_entry(6).get_extent(0)[0]
        finally:
            volume.close()
    return windows.start + offset, windows.start + offset + 4096


def test_unreadable_map_captures_the_whole_volume_and_misses_no_write(
        small_disk: DemoDisk, tmp_path: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory) -> None:
    backing = copy_disk(small_disk.path, tmp_path / "source.img")
    faulty = mount_faulty(backing)
    source = loop_over(faulty.disk)
    faulty.arm(Fault("read", *_bitmap(small_disk)))
    store = tmp_path / "store"
    windows = small_disk.windows
    plan = plan_capture(CaptureRequest(source, store, rescue=True))
    planned = next(p for p in plan.selected if p.partition.number == windows.number)
    assert planned.volume.probe_error and planned.volume.used == [(0, windows.size)]

    # The weak sector reads now, and a file is written: neither is a reason to refuse,
    # because the plan reads every byte of the volume.
    faulty.clear()
    with ntfs3g.mount(backing, windows.start, tmp_path / "w", True, size=windows.size) as root:
        (root / "written-later.bin").write_bytes(os.urandom(8 * MiB))
    summary = execute_capture(plan)
    index = ChunkStore.open(store).load_image(summary.image)[1]
    part = index.partition(windows.number)
    assert part is not None and list(part.extents) == [(0, windows.size)]
    checked = _cli("verify", "--store", str(store), summary.image, "--target", str(backing))
    assert checked.returncode == 0, checked.stdout + checked.stderr  # the new file included


def test_map_unreadable_only_at_execute_is_refused_then_planned_whole(
        small_disk: DemoDisk, tmp_path: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory) -> None:
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "source.img"))
    source = loop_over(faulty.disk)
    store = tmp_path / "store"
    windows = small_disk.windows
    plan = plan_capture(CaptureRequest(source, store, rescue=True))
    bitmap = _bitmap(small_disk)
    faulty.arm(Fault("read", *bitmap))
    with BlockDevice.open(source) as device:
        device.drop_cache()  # the plan's reads of the map are in the page cache
    with pytest.raises(DiskChangedError) as refused:
        execute_capture(plan)
    assert f"used blocks of partition {windows.number} could not be read again" in \
        refused.value.title
    assert "plan the capture again" in refused.value.action
    assert ChunkStore.open(store, create=True).list_images() == []

    again = plan_capture(CaptureRequest(source, store, rescue=True))
    summary = execute_capture(again)
    captured = next(p for p in summary.partitions if p.number == windows.number)
    start = bitmap[0] - windows.start
    assert [(r.offset, r.length) for r in captured.unreadable] == [(start, 4096)]


def test_unreadable_boot_sector_of_a_volume_is_captured_whole(
        small_disk: DemoDisk, tmp_path: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory) -> None:
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "source.img"))
    source = loop_over(faulty.disk)
    windows = small_disk.windows
    faulty.arm(Fault("read", windows.start, windows.start + 512))
    summary = _cli("capture", str(source), "--store", str(tmp_path / "store"), "--rescue",
                   "--json")
    assert summary.returncode == 14, summary.stdout + summary.stderr
    manifest = ChunkStore.open(tmp_path / "store").list_images()[0].manifest
    assert manifest is not None
    part = manifest.partition(windows.number)
    assert [(r.offset, r.length) for r in part.unreadable] == [(0, 512)]
    assert part.used_bytes == windows.size and "Its used blocks are unknown" in part.warnings[0]
