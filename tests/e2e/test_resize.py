"""Restore onto a smaller and a larger NVMe disk inside the live image (issue 10's e2e).

A 2 GiB GPT Windows-like disk is captured in the guest once, then restored unattended onto
a blank 1.5 GiB and a blank 4 GiB NVMe disk (same serial: the job names the target by it).
On the host: ntfsfix -n and ntfsresize --check of the resized Windows volume, its file tree
against the source volume's (BLAKE3 of every file, security descriptors), the identifiers,
the Recovery volume's ntfsclone hash at its new place, and `recovery verify --target`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.engine.filetree import compare_trees, file_tree
from recovery.engine.table import read_table
from recovery.model.layout import PartitionTable
from recovery.sys import ntfs3g, ntfsresize
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.ui.cli import main as recovery_cli
from tests.e2e.conftest import LiveImage
from tests.e2e.test_unattended import (
    STORE_LABEL,
    check_store_on_host,
    run_job,
    store_options,
)
from tests.e2e.windisk import WindowsDisk, make_gpt_disk, make_store_disk, mounted_store_disk

GiB = 1 << 30
MiB = 1 << 20
SERIAL = "NVME-SYS-0001"


@pytest.fixture(scope="module")
def captured(live_image: LiveImage, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[WindowsDisk, Path]:
    tmp_path = tmp_path_factory.mktemp("resize-captured")
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    store = tmp_path / "store.img"
    make_store_disk(store, 4 * GiB, STORE_LABEL)
    verdict, report = run_job(live_image, "uefi-nvme-usb", tmp_path / "capture",
                              {"system": disk.image, "store": store},
                              f"{store_options('capture', 'win')} recovery.source={SERIAL}")
    assert verdict == "PASS", report
    check_store_on_host(store, tmp_path, "win")
    return disk, store


def _table(path: Path) -> PartitionTable:
    with BlockDevice.open(path) as device:
        return read_table(device)


@pytest.mark.xfail(reason="UNVERIFIED: written or changed in session 3 and not yet run "
                   "to the end in QEMU (see the closing note); the next session runs "
                   "it and removes this marker", strict=False)
@pytest.mark.parametrize("size", [3 * GiB // 2, 4 * GiB], ids=["1.5GiB", "4GiB"])
def test_restore_onto_another_size_of_nvme_disk(live_image: LiveImage, tmp_path: Path,
                                                captured: tuple[WindowsDisk, Path],
                                                size: int) -> None:
    disk, store = captured
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(size)
    verdict, report = run_job(live_image, "uefi-nvme-usb", tmp_path / "restore",
                              {"system": target, "store": store},
                              f"{store_options('restore', 'win')} recovery.target={SERIAL} "
                              "recovery.yes=1")
    assert verdict == "PASS", report
    source, restored = _table(disk.image), _table(target)
    assert restored.disk_id == source.disk_id
    old, new = ({p.number: p for p in t.partitions} for t in (source, restored))
    for number, part in old.items():
        assert (new[number].guid, new[number].type_id, new[number].name,
                new[number].attributes) == (part.guid, part.type_id, part.name,
                                            part.attributes)
    assert new[1] == old[1] and new[2] == old[2]  # ESP and MSR keep start and size
    assert new[4].size == old[4].size and new[4].end > size - 2 * MiB  # Recovery at the end
    assert (new[3].size < old[3].size) == (size < 2 * GiB)
    windows = new[3]
    assert ntfs3g.ntfsfix_check(target, windows.start, windows.size).ok
    with ntfs3g.volume_device(target, windows.start, windows.size) as volume:
        ntfsresize.check(volume)
    with BlockDevice.open(disk.image) as src, BlockDevice.open(target) as dst:
        want = file_tree(DeviceSlice(src, old[3].start, old[3].size), "source")
        got = file_tree(DeviceSlice(dst, windows.start, windows.size), "target")
    assert want and compare_trees(want, got, "Windows") == []
    assert ntfs3g.ntfsclone_image_hash(target, new[4].start, new[4].size) == \
        ntfs3g.ntfsclone_image_hash(disk.image, old[4].start, old[4].size)
    with mounted_store_disk(store, tmp_path / "store-mnt") as root:
        assert recovery_cli(["verify", "--store", str(root / "images"), "win",
                             "--target", str(target)]) == 0
