"""Disks that fail or disappear mid-run, through real kernel I/O errors (faultyfs + loop).

Capture from a source whose reads fail, restore to a target whose writes fail or that
vanishes, a store that fills up: each ends in the error a technician can act on, never in a
complete-looking image, and the same command finishes the job once the fault is gone.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.restore import RestoreRequest, restore
from recovery.engine.verify import verify
from recovery.errors import DeviceIOError, ImageIncompleteError, StoreFullError
from recovery.events import Event, Progress
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB
from tests.faults.conftest import (
    CHUNK,
    LoopFactory,
    MountFactory,
    blank_disk,
    copy_disk,
    offset_named,
    used_range_in_middle,
)
from tests.faults.faultyfs import Fault, FaultyMount


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recovery", *argv], capture_output=True,
                          text=True, timeout=600)


# --- the tool itself ----------------------------------------------------------------------
def _random_disk(tmp_path: Path, mount_faulty: MountFactory) -> tuple[Path, FaultyMount]:
    backing = tmp_path / "disk.img"
    backing.write_bytes(os.urandom(16 * MiB))
    return backing, mount_faulty(backing)


def test_faulty_range_fails_with_eio_and_the_rest_reads(mount_faulty: MountFactory,
                                                        loop_over: LoopFactory,
                                                        tmp_path: Path) -> None:
    backing, faulty = _random_disk(tmp_path, mount_faulty)
    faulty.arm(Fault("read", 8 * MiB, 9 * MiB))
    fd = os.open(faulty.disk, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as caught:
            os.pread(fd, 4096, 8 * MiB + 4096)
        assert caught.value.errno == errno.EIO
        assert os.pread(fd, MiB, 9 * MiB) == backing.read_bytes()[9 * MiB: 10 * MiB]
    finally:
        os.close(fd)
    state = faulty.state()
    assert state.failures == 1 and state.faults[0].first_hit == 8 * MiB + 4096
    faulty.clear()
    assert faulty.disk.read_bytes() == backing.read_bytes()


def test_loop_device_over_faultyfs_sees_kernel_io_errors(mount_faulty: MountFactory,
                                                         loop_over: LoopFactory,
                                                         tmp_path: Path) -> None:
    backing, faulty = _random_disk(tmp_path, mount_faulty)
    device_path = loop_over(faulty.disk)
    faulty.arm(Fault("read", 8 * MiB, 9 * MiB))
    with BlockDevice.open(device_path) as device:
        assert device.read_uncached(0, MiB) == backing.read_bytes()[:MiB]
        with pytest.raises(DeviceIOError) as caught:
            device.read_at(7 * MiB, 2 * MiB)
        assert str(device_path) in caught.value.title
        assert 8 * MiB <= offset_named(caught.value.title) < 9 * MiB  # the first bad page
        with pytest.raises(DeviceIOError) as caught:
            device.read_uncached(7 * MiB, 2 * MiB)
        assert 7 * MiB <= offset_named(caught.value.title) < 9 * MiB  # O_DIRECT: the request
        faulty.arm(Fault("write", 0, None, "ENODEV"))
        with pytest.raises(OSError):  # a pulled drive: the write-back fails
            fd = os.open(device_path, os.O_WRONLY)
            try:
                os.pwrite(fd, b"x" * 4096, 0)
                os.fsync(fd)
            finally:
                os.close(fd)


# --- capture: the source fails reads ------------------------------------------------------
def test_capture_read_error_leaves_image_incomplete_then_resumes(
        small_disk: DemoDisk, mount_faulty: MountFactory, loop_over: LoopFactory,
        tmp_path: Path) -> None:
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "source.img"))
    source = loop_over(faulty.disk)
    store = tmp_path / "store"
    bad_start, bad_end = used_range_in_middle(small_disk)
    faulty.arm(Fault("read", bad_start, bad_end))

    with pytest.raises(DeviceIOError) as caught:
        capture(CaptureRequest(source, store))
    assert str(source) in caught.value.title
    assert bad_start <= offset_named(caught.value.title) < bad_end
    assert caught.value.code == 11
    images = ChunkStore.open(store).list_images()
    assert [image.state for image in images] == ["incomplete"]
    with pytest.raises(ImageIncompleteError):
        verify(store, images[0].name)

    faulty.clear()
    again = capture(CaptureRequest(source, store))  # the same command, nothing named
    assert again.image == images[0].name
    assert again.stats.chunks_reused > 0
    assert [i.state for i in ChunkStore.open(store).list_images()] == ["complete"]
    assert verify(store, again.image, source).ok


def test_source_unplugged_mid_capture_exits_11_then_the_same_command_completes(
        small_disk: DemoDisk, mount_faulty: MountFactory, tmp_path: Path) -> None:
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "source.img"))
    store = tmp_path / "store"
    command = ["capture", str(faulty.disk), "--store", str(store), "--json"]
    faulty.arm(Fault("any", 0, None, "ENODEV", after_bytes=30 * MiB))

    failed = _cli(*command)
    assert failed.returncode == 11, failed.stdout + failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert str(faulty.disk) in error["title"] and "No such device" in error["title"]
    assert "disappeared" in error["action"]
    listed = json.loads(_cli("images", "--store", str(store), "--json").stdout)
    assert [image["state"] for image in listed["images"]] == ["incomplete"]

    faulty.clear()
    done = _cli(*command)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["image"] == listed["images"][0]["name"]
    listed = json.loads(_cli("images", "--store", str(store), "--json").stdout)
    assert [image["state"] for image in listed["images"]] == ["complete"]


# --- restore: the target fails writes or disappears ---------------------------------------
def test_restore_write_error_names_target_and_offset_then_delta_finishes(
        small_disk: DemoDisk, small_store: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory, tmp_path: Path) -> None:
    faulty = mount_faulty(blank_disk(tmp_path / "target.img", small_disk.table.disk_size))
    target = loop_over(faulty.disk)
    bad_start, bad_end = used_range_in_middle(small_disk)
    faulty.arm(Fault("write", bad_start, bad_end))

    with pytest.raises(DeviceIOError) as caught:
        restore(RestoreRequest(small_store, "base", target, confirmed=True))
    assert str(target) in caught.value.title
    # An O_DIRECT write fails whole: the offset is where the failing write began.
    assert bad_start - CHUNK <= offset_named(caught.value.title) < bad_end
    assert faulty.state().faults[0].hits > 0

    faulty.clear()
    resumed = restore(RestoreRequest(small_store, "base", target, delta=True, confirmed=True))
    assert resumed.verified and resumed.chunks_skipped > 0 and resumed.chunks_written > 0
    assert verify(small_store, "base", target).ok


@pytest.mark.parametrize(("through_loop", "error"), [(False, "ENODEV"), (True, "ENXIO")],
                         ids=["file-enodev", "loop-enxio"])
def test_target_disappearing_mid_restore_exits_11_then_delta_finishes(
        small_disk: DemoDisk, small_store: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory, tmp_path: Path, through_loop: bool, error: str) -> None:
    faulty = mount_faulty(blank_disk(tmp_path / "target.img", small_disk.table.disk_size))
    target = loop_over(faulty.disk) if through_loop else faulty.disk
    # Pulled out once 40 MiB went through: table and boot areas are on it, the data is not.
    faulty.arm(Fault("any", 0, None, error, after_bytes=40 * MiB))

    failed = _cli("restore", "--store", str(small_store), "base", str(target), "--yes", "--json")
    assert failed.returncode == 11, failed.stderr
    document = json.loads(failed.stdout)
    assert document["ok"] is False and document["error"]["code"] == 11
    assert str(target) in document["error"]["title"]
    assert re.search(r"byte offset \d+", document["error"]["title"])
    assert document["error"]["action"]
    assert faulty.state().failures > 0

    faulty.clear()
    resumed = _cli("restore", "--store", str(small_store), "base", str(target), "--delta",
                   "--yes", "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["verified"] is True and summary["chunks_skipped"] > 0
    checked = _cli("verify", "--store", str(small_store), "base", "--target", str(target),
                   "--json")
    assert checked.returncode == 0, checked.stdout


# --- verify: the disk fails reads ---------------------------------------------------------
def test_verify_lists_unreadable_ranges_as_problems(
        small_disk: DemoDisk, small_store: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory, tmp_path: Path) -> None:
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "disk.img"))
    disk = loop_over(faulty.disk)
    bad_start, bad_end = used_range_in_middle(small_disk)
    faulty.arm(Fault("read", bad_start, bad_end))

    checked = _cli("verify", "--store", str(small_store), "base", "--target", str(disk),
                   "--json")
    assert checked.returncode == 40, checked.stdout + checked.stderr
    problems = json.loads(checked.stdout)["problems"]
    assert len(problems) == 1 and str(disk) in problems[0]
    # An O_DIRECT read fails whole: the offset is where the failing read began.
    assert bad_start - CHUNK <= offset_named(problems[0]) < bad_end
    faulty.clear()
    assert verify(small_store, "base", disk).ok


# --- the store fills up -------------------------------------------------------------------
def test_store_filling_up_mid_capture_then_rerun_completes(small_disk: DemoDisk,
                                                           usb_drive: Path) -> None:
    store = usb_drive / "store"
    filler = usb_drive / "other-pc.img"

    def fill_when_capture_runs(event: Event) -> None:
        # Something else (another capture, a technician's copy) takes the space after
        # capture checked it: the first chunks are written, the rest cannot be.
        if isinstance(event, Progress) and event.done_bytes and not filler.exists():
            free = os.statvfs(usb_drive).f_bavail * os.statvfs(usb_drive).f_frsize
            with open(filler, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, free - 4 * MiB)

    with pytest.raises(StoreFullError) as caught:
        capture(CaptureRequest(small_disk.path, store), fill_when_capture_runs)
    assert caught.value.code == 21
    assert str(store) in caught.value.title
    assert filler.exists()
    images = ChunkStore.open(store).list_images()
    assert images and not any(image.complete for image in images)

    filler.unlink()
    again = capture(CaptureRequest(small_disk.path, store))
    assert again.image == images[0].name and again.stats.chunks_reused > 0
    assert [i.state for i in ChunkStore.open(store).list_images()] == ["complete"]
    assert verify(store, again.image).ok
