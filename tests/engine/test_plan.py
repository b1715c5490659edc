"""Frozen plans: what was planned (and confirmed) is exactly what executes, on exactly the
disk it was planned for, or nothing happens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.capture import CaptureRequest, capture, execute_capture, plan_capture
from recovery.engine.disks import mountpoints_over
from recovery.engine.restore import RestoreRequest, execute_restore, plan_restore
from recovery.errors import DiskChangedError, SourceInUseError, VolumeStateError
from recovery.registry.safety import write_refusals
from recovery.registry.volume import WindowsVolume
from recovery.store.objects import ChunkStore
from recovery.sys import losetup, ntfs3g
from recovery.sys.run import run
from recovery.units import MiB
from tests.conftest import ext4_mounted
from tests.engine.helpers import sfdisk_dump, volume_fingerprints


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recovery", *argv], capture_output=True,
                          text=True, timeout=600)


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def _captured(store: Path, name: str) -> list[int]:
    manifest, index = ChunkStore.open(store).load_image(name)
    assert [p.number for p in index.partitions] == \
        [p.number for p in manifest.captured_partitions]
    return [p.number for p in manifest.captured_partitions]


@pytest.fixture
def disk_copy(small_disk: DemoDisk, tmp_path: Path) -> Path:
    """A copy of the small Windows disk this test may mount and change."""
    copy = tmp_path / "copy.img"
    run(["cp", "--sparse=always", str(small_disk.path), str(copy)])
    return copy


# --- exactly the partitions chosen ---------------------------------------------------------
def test_cli_capture_of_partition_numbers_leaves_out_exactly_the_rest(
        small_disk: DemoDisk, tmp_path: Path) -> None:
    store = tmp_path / "store"
    # GPT demo disk: 1 ESP (boot), 2 MSR (reserved), 3 Windows (system), 4 WinRE (reserved).
    result = _cli("capture", str(small_disk.path), "--store", str(store), "--name", "no-msr",
                  "--partitions", "1,3,4", "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["plan"]["selected"] == [1, 3, 4]
    assert report["plan"]["identity"]["stable_id"] == f"file:{small_disk.path}"
    assert [p["selected"] for p in report["partitions"]] == [True, False, True, True]
    assert _captured(store, "no-msr") == [1, 3, 4]
    # Roles and numbers together: the reserved role would take MSR and WinRE; here only
    # the system volume and WinRE by number.
    result = _cli("capture", str(small_disk.path), "--store", str(store), "--name", "mixed",
                  "--partitions", "system,4")
    assert result.returncode == 0, result.stderr
    assert "partition 2: reserved" in result.stdout and "(leave out)" in result.stdout
    assert _captured(store, "mixed") == [3, 4]


def test_choose_unticks_one_of_two_partitions_with_the_same_role(
        small_disk: DemoDisk, tmp_path: Path) -> None:
    plan = plan_capture(CaptureRequest(small_disk.path, None, roles=frozenset({"reserved"})))
    assert plan.selected_numbers == [2, 4]  # MSR and WinRE share the role
    chosen = plan.choose({4}, store=tmp_path / "store", name="winre-only")
    assert chosen.selected_numbers == [4] and not chosen.refusals
    summary = execute_capture(chosen)
    assert _captured(tmp_path / "store", summary.image) == [4]


def test_cli_refuses_a_partition_number_the_disk_does_not_have(
        small_disk: DemoDisk, tmp_path: Path) -> None:
    result = _cli("capture", str(small_disk.path), "--store", str(tmp_path / "store"),
                  "--partitions", "3,9")
    assert result.returncode == 2
    assert "has no partition 9" in result.stderr
    assert not (tmp_path / "store").exists()


# --- the disk must still be the one planned -------------------------------------------------
def test_restore_refused_when_the_image_file_was_replaced(
        small_store: Path, small_disk: DemoDisk, tmp_path: Path) -> None:
    target = _sparse(tmp_path / "target.img", small_disk.table.disk_size)
    plan = plan_restore(RestoreRequest(small_store, "base", target, confirmed=True))
    assert not plan.refusals
    # Same path, another file (a technician re-created it, or a script swapped it).
    other = _sparse(tmp_path / "other.img", small_disk.table.disk_size)
    os.replace(other, target)
    with pytest.raises(DiskChangedError, match="no longer the disk") as refused:
        execute_restore(plan)
    assert refused.value.code == 36
    assert target.stat().st_blocks == 0  # nothing written


@pytest.fixture
def two_loops(small_disk: DemoDisk, tmp_path: Path) -> Iterator[tuple[Path, Path, Path, Path]]:
    """Two loop devices over two blank image files: (loop_a, file_a, loop_b, file_b)."""
    size = small_disk.table.disk_size
    file_a, file_b = _sparse(tmp_path / "a.img", size), _sparse(tmp_path / "b.img", size)
    loops = [losetup.attach(file_a), losetup.attach(file_b)]
    try:
        yield loops[0], file_a, loops[1], file_b
    finally:
        for loop in loops:
            losetup.detach(loop)


def _swap(loop_a: Path, file_a: Path, loop_b: Path, file_b: Path) -> None:
    """Re-attach the two loop devices the other way round (as USB disks re-enumerate)."""
    losetup.detach(loop_a)
    losetup.detach(loop_b)
    run(["losetup", str(loop_a), str(file_b)])
    run(["losetup", str(loop_b), str(file_a)])
    run(["udevadm", "settle", "--timeout=30"], check=False)


def test_restore_refused_when_loop_devices_were_swapped(
        small_store: Path, two_loops: tuple[Path, Path, Path, Path]) -> None:
    loop_a, file_a, loop_b, file_b = two_loops
    plan = plan_restore(RestoreRequest(small_store, "base", loop_a, confirmed=True))
    assert not plan.refusals and plan.identity.stable_id == f"loop:{file_a}"
    _swap(loop_a, file_a, loop_b, file_b)
    assert losetup.backing_file(loop_a) == file_b
    with pytest.raises(DiskChangedError, match=str(loop_a)):
        execute_restore(plan)
    assert file_a.stat().st_blocks == 0 and file_b.stat().st_blocks == 0


def test_capture_refused_when_the_source_node_now_holds_another_disk(
        small_disk: DemoDisk, disk_copy: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with losetup.loop_device(small_disk.path, read_only=True) as loop:
        plan = plan_capture(CaptureRequest(loop, store))
        losetup.detach(loop)
        run(["losetup", "--read-only", str(loop), str(disk_copy)])
        with pytest.raises(DiskChangedError):
            execute_capture(plan)
    assert not (store / "images").exists() or not any((store / "images").iterdir())


# --- capture passes the gate ------------------------------------------------------------------
def test_cli_refuses_a_store_on_the_disk_being_captured(
        disk_copy: Path, small_disk: DemoDisk, tmp_path: Path) -> None:
    volume = small_disk.windows
    with losetup.loop_device(disk_copy, read_only=True) as source, \
            ntfs3g.mount(disk_copy, volume.start, tmp_path / "c", True,
                         size=volume.size) as root:
        store = root / "images"
        for given in (source, disk_copy):  # the loop device, and the image file itself
            result = _cli("capture", str(given), "--store", str(store), "--json")
            assert result.returncode == SourceInUseError.code == 37, result.stdout
            error = json.loads(result.stdout)["error"]
            assert error["kind"] == "source-in-use"
            assert "the disk being captured" in error["title"]
        assert not store.exists()


# --- sector sizes -------------------------------------------------------------------------------
def test_4k_sector_image_restores_to_an_image_file(tmp_path: Path) -> None:
    spec = DiskSpec(scheme="gpt", sector_size=4096, size=1000 * MiB, windows_size=300 * MiB,
                    data_bytes=24 * MiB)
    disk = build_windows_disk(tmp_path / "gpt4k.img", spec)
    store = tmp_path / "store"
    summary = capture(CaptureRequest(disk.path, store, name="gpt4k"))
    manifest, _ = ChunkStore.open(store).load_image(summary.image)
    assert manifest.table.sector_size == 4096
    assert manifest.source.logical_sector_size == 4096  # the file's, as BlockDevice reads it
    target = _sparse(tmp_path / "target.img", spec.size)
    plan = plan_restore(RestoreRequest(store, "gpt4k", target, confirmed=True))
    assert not plan.refusals
    assert execute_restore(plan).verified
    assert sfdisk_dump(target, 4096) == sfdisk_dump(disk.path, 4096)
    assert volume_fingerprints(target, disk.table) == volume_fingerprints(disk.path,
                                                                          disk.table)
    shutil.rmtree(store)


# --- one "is it mounted" detector -----------------------------------------------------------
def test_registry_gate_sees_a_volume_mounted_through_an_offset_loop(
        disk_copy: Path, small_disk: DemoDisk, tmp_path: Path) -> None:
    windows, esp = small_disk.windows, small_disk.table.partitions[0]
    volume = WindowsVolume(disk_copy, windows.start, windows.size, partition=3)
    assert mountpoints_over(disk_copy, windows.start, windows.size) == []
    with ntfs3g.mount(disk_copy, windows.start, tmp_path / "c", False,
                      size=windows.size) as root:
        assert mountpoints_over(disk_copy, windows.start, windows.size) == [str(root)]
        assert mountpoints_over(disk_copy, esp.start, esp.size) == []  # another partition
        refusals = write_refusals(volume)
        assert any(isinstance(r, VolumeStateError) and "mounted at" in r.title
                   for r in refusals), refusals
        with losetup.loop_device(disk_copy, read_only=True) as loop:  # the disk as a device
            assert mountpoints_over(loop, windows.start, windows.size) == [str(root)]
            assert mountpoints_over(loop, esp.start, esp.size) == []


def test_a_mount_of_a_deleted_file_is_not_a_mount_of_its_successor(tmp_path: Path) -> None:
    image = _sparse(tmp_path / "volume.img", 32 * MiB)
    with losetup.loop_device(image) as loop, ext4_mounted(loop, tmp_path / "old") as old:
        assert mountpoints_over(image, 0, 32 * MiB) == [str(old)]
        image.unlink()  # a stale mount of a file that was deleted and made again
        _sparse(image, 32 * MiB)
        assert mountpoints_over(image, 0, 32 * MiB) == []
