"""Restore onto a smaller and a larger NVMe disk inside the live image (issue 10's e2e).

A 2 GiB GPT Windows disk (the demo's: ESP, MSR, Windows with real hives, WinRE after it;
files placed high in the Windows volume so that the shrink must move them) is captured on
the host once (the guest's capture is proven by test_unattended.py). One shell boot of the
live image, with both targets and the store stick, then runs for each target the restore
as the unattended service runs it (`recovery.run=restore recovery.target=SERIAL
recovery.yes=1`, the large disk also `recovery.system-size=`; test_unattended.guest_job): a
blank 1.5 GiB NVMe disk (Windows shrunk) and a blank 4 GiB one (Windows grown to the size
asked). The new layout must be on the serial console before the result line, and in the
job's JSON.
On the host, each target: ntfsfix -n and ntfsresize --check of the resized Windows volume,
its file tree against the source volume's (BLAKE3 of every file, security descriptors), the
identifiers, the Recovery volume's ntfsclone hash at its new place, `recovery verify
--target`, and the store's image files as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qemu import VM, Machine
from qemu import DiskSpec as VMDisk
from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.filetree import compare_trees, file_tree
from recovery.engine.table import read_table
from recovery.model.layout import PartitionTable
from recovery.store.locks import LOCKS_DIR
from recovery.sys import ntfs3g, ntfsresize
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.ui.cli import main as recovery_cli
from tests.e2e.conftest import LiveImage, start_shell_vm
from tests.e2e.test_unattended import STORE_LABEL, guest_job, store_options
from tests.e2e.windisk import make_store_disk, mounted_store_disk
from tests.engine.helpers import place_files_high

GiB = 1 << 30
MiB = 1 << 20
# ESP 100 MiB, MSR 16 MiB, Windows, WinRE 160 MiB from 1 MiB on: a 2 GiB disk, full.
SOURCE = DiskSpec(size=2 * GiB, windows_size=2 * GiB - 278 * MiB, data_bytes=160 * MiB)


@dataclass(frozen=True)
class Target:
    serial: str
    size: int
    options: str  # besides the job's own: the technician's choice, if any
    action: str  # what the plan does to Windows
    windows_size: int | None = None  # the size asked for, if any


TARGETS = [
    Target("NVME-SMALL-0001", 3 * GiB // 2, "", "shrunk"),
    Target("NVME-LARGE-0001", 4 * GiB, "recovery.system-size=3G", "grown", 3 * GiB),
]


@dataclass(frozen=True)
class Captured:
    disk: DemoDisk
    store: Path
    files: dict[str, tuple[int, int]]  # the store's image files: size and mtime


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    """The Windows disk captured on the host into image 'win' (no boot), shared by both
    targets: a restore only reads the store."""
    tmp_path = tmp_path_factory.mktemp("resize")
    disk = build_windows_disk(tmp_path / "windows.img", SOURCE)
    place_files_high(disk, tmp_path / "mnt")
    store = tmp_path / "store.img"
    make_store_disk(store, 4 * GiB, STORE_LABEL)
    with mounted_store_disk(store, tmp_path / "store-mnt", read_write=True) as root:
        assert recovery_cli(["capture", str(disk.path), "--store", str(root / "images"),
                             "--name", "win"]) == 0
    return Captured(disk, store, _store_files(store, tmp_path / "store-mnt"))


def _store_files(store: Path, mountpoint: Path) -> dict[str, tuple[int, int]]:
    """Every file of the image (manifests, chunks): the restore must have changed none.
    (Lock files come and go: a restore takes a shared lock on the store.)"""
    with mounted_store_disk(store, mountpoint) as root:
        return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in (root / "images").rglob("*")
                if p.is_file() and LOCKS_DIR not in p.relative_to(root).parts}


def _table(path: Path) -> PartitionTable:
    with BlockDevice.open(path) as device:
        return read_table(device)


def _check_target(disk: DemoDisk, store: Path, target: Path, tmp_path: Path) -> int:
    """The host's checks of a restored target; the new size of its Windows partition."""
    size = target.stat().st_size
    source, restored = _table(disk.path), _table(target)
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
    with BlockDevice.open(disk.path) as src, BlockDevice.open(target) as dst:
        want = file_tree(DeviceSlice(src, old[3].start, old[3].size), "source")
        got = file_tree(DeviceSlice(dst, windows.start, windows.size), "target")
    assert want and compare_trees(want, got, "Windows") == []
    assert ntfs3g.ntfsclone_image_hash(target, new[4].start, new[4].size) == \
        ntfs3g.ntfsclone_image_hash(disk.path, old[4].start, old[4].size)
    with mounted_store_disk(store, tmp_path / "store-mnt") as root:
        assert recovery_cli(["verify", "--store", str(root / "images"), "win",
                             "--target", str(target)]) == 0
    return windows.size


@dataclass(frozen=True)
class Guest:
    vm: VM
    targets: dict[str, Path]  # serial: the blank disk's image file


@pytest.fixture(scope="module")
def guest(live_image: LiveImage, tmp_path_factory: pytest.TempPathFactory,
          captured: Captured) -> Iterator[Guest]:
    """A UEFI PC with both blank NVMe targets and the store stick, at a shell."""
    tmp_path = tmp_path_factory.mktemp("resize-vm")
    targets = {}
    for target in TARGETS:
        targets[target.serial] = tmp_path / f"{target.serial}.img"
        with open(targets[target.serial], "wb") as handle:
            handle.truncate(target.size)
    machine = Machine("uefi-nvme-targets", "UEFI PC with two blank NVMe disks of other "
                      "sizes and the store stick", "uefi", (
                          *(VMDisk(t.serial, "nvme", t.serial, t.size) for t in TARGETS),
                          VMDisk("store", "usb", "USB-STORE-0001", 4 * GiB)))
    vm = start_shell_vm(live_image, machine, tmp_path / "vm",
                        {**targets, "store": captured.store})
    try:
        yield Guest(vm, targets)
    finally:
        vm.__exit__(None, None, None)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.serial)
def test_unattended_restore_onto_an_nvme_disk_of_another_size(
        guest: Guest, tmp_path: Path, captured: Captured, target: Target) -> None:
    path = guest.targets[target.serial]
    options = (f"{store_options('restore', 'win')} recovery.target={target.serial} "
               f"recovery.yes=1 {target.options}")
    verdict, report, console = guest_job(guest.vm, options.strip())
    guest.vm.shell("sync")
    assert verdict == "PASS", report
    done = report["result"]
    assert isinstance(done, dict) and done["ok"] and done["verified"], done
    changes = {p["number"]: p for p in done["plan"]["layout"]["partitions"]}
    assert (changes[3]["action"], changes[4]["action"]) == (target.action, "moved")
    # The plan was on the console before the restore wrote anything (and the result).
    shown = console.index(f"New layout: Windows {target.action} to")
    assert shown < console.index("RECOVERY-RESULT:")
    new_windows = _check_target(captured.disk, captured.store, path, tmp_path)
    if target.windows_size is not None:
        assert new_windows == target.windows_size
    assert _store_files(captured.store, tmp_path / "store-after") == captured.files
