"""Rescue capture with read errors in the disk's own areas (faultyfs + loop): LBA 0, the
primary GPT (LBA 1-33), the backup GPT, the post-MBR gap of an MBR disk.

The capture completes (exit 14), the table comes from the copy that reads, the manifest
lists exactly the unreadable ranges per area, a restore onto a clean disk equals the source
outside them and has a valid table, and the source is never written. With no readable copy
of the table the capture is refused, saying so and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.capture import CaptureRequest, capture
from recovery.errors import UnsupportedLayoutError
from recovery.store.objects import ChunkStore
from recovery.sys.run import run_text
from recovery.units import MiB
from tests.faults.conftest import LoopFactory, MountFactory, blank_disk, copy_disk
from tests.faults.faultyfs import Fault
from tests.faults.test_rescue import _assert_equal_outside, _cli, _sha256

SECTOR = 512
PRIMARY_GPT = (SECTOR, 33 * SECTOR)  # LBA 1-33: header and 128 entries of 128 bytes
GAP = (10 * SECTOR, 3 * SECTOR)  # inside the boot loader the demo puts after the MBR


@pytest.fixture(scope="module")
def mbr_disk(tmp_path_factory: pytest.TempPathFactory) -> DemoDisk:
    spec = DiskSpec(scheme="mbr", size=640 * MiB, windows_size=300 * MiB, data_bytes=40 * MiB)
    return build_windows_disk(tmp_path_factory.mktemp("mbr") / "mbr.img", spec)


def _areas(summary: dict[str, object]) -> list[tuple[str, int, int]]:
    found = summary.get("disk_unreadable", [])
    assert isinstance(found, list)
    return [(item["area"], item["offset"], item["length"]) for item in found]


def _rescue_and_restore(disk: DemoDisk, faults: list[tuple[int, int]], tmp_path: Path,
                        mount_faulty: MountFactory, loop_over: LoopFactory, zeroed: bool
                        ) -> tuple[dict[str, object], Path, Path]:
    """Rescue-capture a copy of `disk` failing at `faults` (disk offset, length), restore
    the image onto a blank disk; the summary, the source copy and the restored disk.
    `zeroed`: the restore writes zeros in the faults (else a new table)."""
    backing = copy_disk(disk.path, tmp_path / "source.img")
    before = _sha256(backing)
    faulty = mount_faulty(backing)
    source = loop_over(faulty.disk)
    faulty.arm(*(Fault("read", start, start + length) for start, length in faults))
    store = tmp_path / "store"
    done = _cli("capture", str(source), "--store", str(store), "--rescue", "--json")
    assert done.returncode == 14, done.stdout + done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    assert summary["unreadable_bytes"] == sum(n for _, n in faults)
    assert all("unreadable" not in part for part in summary["partitions"])  # type: ignore
    manifest = ChunkStore.open(store).load_image(str(summary["image"]))[0]
    assert manifest.format == 3
    assert [(d.area, d.offset, d.length) for d in manifest.disk_unreadable] == _areas(summary)
    faulty.clear()

    target = blank_disk(tmp_path / "target.img", disk.table.disk_size)
    restored = _cli("restore", "--store", str(store), str(summary["image"]), str(target),
                    "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"{summary['unreadable_bytes']} bytes were unreadable" in restored.stdout
    checked = _cli("verify", "--store", str(store), str(summary["image"]), "--target",
                   str(target))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    _assert_equal_outside(backing, target, faults, zeroed)
    assert _sha256(backing) == before  # the source was never written
    summary["_listing"] = _cli("images", "--store", str(store)).stdout
    return summary, backing, target


def test_unreadable_lba0_and_primary_gpt_use_the_backup(
        small_disk: DemoDisk, tmp_path: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory) -> None:
    faults = [(0, SECTOR), PRIMARY_GPT]
    summary, _source, target = _rescue_and_restore(small_disk, faults, tmp_path,
                                                   mount_faulty, loop_over, zeroed=False)
    assert summary["table_copy"] == "backup"
    assert _areas(summary) == [("mbr", 0, SECTOR), ("primary-gpt", *PRIMARY_GPT)]
    listing = str(summary["_listing"])
    assert "primary GPT (header and partition entries) - the backup GPT was used" in listing
    assert "both GPT copies and the protective MBR are written" in listing
    verified = run_text(["sgdisk", "-v", str(target)], check=False)
    assert "No problems found" in verified, verified


def test_unreadable_boot_code_after_the_mbr(
        mbr_disk: DemoDisk, tmp_path: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory) -> None:
    summary, _source, target = _rescue_and_restore(mbr_disk, [GAP], tmp_path, mount_faulty,
                                                   loop_over, zeroed=True)
    assert _areas(summary) == [("post-mbr-gap", *GAP)]
    assert summary["table_copy"] is None
    listing = str(summary["_listing"])
    assert "boot code after the MBR" in listing and "installed again" in listing
    checked = run_text(["sfdisk", "-V", str(target)], check=False)
    assert "No errors detected" in checked, checked


def test_unreadable_backup_gpt_uses_the_primary(
        small_disk: DemoDisk, tmp_path: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory) -> None:
    size = small_disk.table.disk_size
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "source.img"))
    source = loop_over(faulty.disk)
    backup = (size - 33 * SECTOR, 33 * SECTOR)
    faulty.arm(Fault("read", backup[0], size))
    summary = capture(CaptureRequest(source, tmp_path / "store", rescue=True))
    assert summary.table_copy == "primary"
    assert [(d.area, d.offset, d.length) for d in summary.disk_unreadable] == [
        ("backup-gpt", *backup)]
    assert "the primary GPT was used" in summary.disk_unreadable[0].what


@pytest.mark.parametrize("where", ["mbr-lba0", "both-gpt-copies"])
def test_no_readable_table_is_refused(where: str, small_disk: DemoDisk, mbr_disk: DemoDisk,
                                      tmp_path: Path, mount_faulty: MountFactory,
                                      loop_over: LoopFactory) -> None:
    disk = mbr_disk if where == "mbr-lba0" else small_disk
    size = disk.table.disk_size
    faulty = mount_faulty(copy_disk(disk.path, tmp_path / "source.img"))
    source = loop_over(faulty.disk)
    if where == "mbr-lba0":
        faulty.arm(Fault("read", 0, SECTOR))
    else:
        faulty.arm(Fault("read", SECTOR, 2 * SECTOR), Fault("read", size - SECTOR, size))
    with pytest.raises(UnsupportedLayoutError) as refused:
        capture(CaptureRequest(source, tmp_path / "store", rescue=True))
    assert "cannot be read from any copy" in refused.value.title
    assert ("LBA 0 (the MBR)" if where == "mbr-lba0" else "the backup GPT") in \
        refused.value.title
    assert "not possible" in refused.value.action and "ddrescue" in refused.value.action
    assert not (tmp_path / "store").exists() or not ChunkStore.open(
        tmp_path / "store").list_images()
    done = _cli("capture", str(source), "--store", str(tmp_path / "store"), "--rescue")
    assert done.returncode == UnsupportedLayoutError.code, done.stdout + done.stderr
