"""Restore onto a smaller and a larger NVMe disk inside the live image (issue 10's e2e).

A 2 GiB GPT Windows disk (the demo's: ESP, MSR, Windows with real hives, WinRE after it;
files placed high in the Windows volume so that the shrink must move them) is captured on
the host (the guest's capture is proven by
test_unattended.py), then ONE boot of the live image restores it with the image's own
`recovery restore` onto a blank 1.5 GiB and a blank 4 GiB NVMe disk, from the store stick
mounted read-only (so nothing can be written to the store). On the host, each target:
ntfsfix -n and ntfsresize --check of the resized Windows volume, its file tree against the
source volume's (BLAKE3 of every file, security descriptors), the identifiers, the Recovery
volume's ntfsclone hash at its new place, and `recovery verify --target`.
"""

from __future__ import annotations

import json
from pathlib import Path

from qemu import VM, BootMedium, load_machine
from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.filetree import compare_trees, file_tree
from recovery.engine.table import read_table
from recovery.model.layout import PartitionTable
from recovery.sys import ntfs3g, ntfsresize
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.ui.cli import main as recovery_cli
from tests.e2e.conftest import BOOT_TIMEOUT, LiveImage
from tests.e2e.test_unattended import STORE_LABEL
from tests.e2e.windisk import make_store_disk, mounted_store_disk
from tests.engine.helpers import place_files_high

GiB = 1 << 30
MiB = 1 << 20
# ESP 100 MiB, MSR 16 MiB, Windows, WinRE 160 MiB from 1 MiB on: a 2 GiB disk, full.
SOURCE = DiskSpec(size=2 * GiB, windows_size=2 * GiB - 278 * MiB, data_bytes=160 * MiB)
SIZES = {"NVME-SMALL-0001": 3 * GiB // 2, "NVME-LARGE-0001": 4 * GiB}
MACHINE = """description: UEFI PC with two blank NVMe disks of other sizes and the store stick
firmware: uefi
memory_mib: 2048
disks:
  - {name: small, bus: nvme, serial: NVME-SMALL-0001, size: 1536MiB}
  - {name: large, bus: nvme, serial: NVME-LARGE-0001, size: 4GiB}
  - {name: store, bus: usb, serial: USB-STORE-0001, size: 4GiB}
"""


def _table(path: Path) -> PartitionTable:
    with BlockDevice.open(path) as device:
        return read_table(device)


def _restore_in_guest(vm: VM, serial: str) -> dict[str, object]:
    """`recovery restore --json` onto the disk with `serial`: its plan and its summary."""
    node = f"$(lsblk -dnpo PATH,SERIAL | awk '$2==\"{serial}\" {{print $1}}')"
    done: dict[str, object] = json.loads(vm.shell(
        f"recovery restore --store /mnt/store/images win {node} --yes --json", timeout=900))
    print(f"{serial}: restored {vm.elapsed:.0f} s after QEMU started")
    return done


def _check_target(disk: DemoDisk, store: Path, target: Path, tmp_path: Path) -> None:
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


def test_restore_onto_a_smaller_and_a_larger_nvme_disk(live_image: LiveImage,
                                                       tmp_path: Path) -> None:
    disk = build_windows_disk(tmp_path / "windows.img", SOURCE)
    place_files_high(disk, tmp_path / "mnt")
    store = tmp_path / "store.img"
    make_store_disk(store, 4 * GiB, STORE_LABEL)
    with mounted_store_disk(store, tmp_path / "store-mnt", read_write=True) as root:
        assert recovery_cli(["capture", str(disk.path), "--store", str(root / "images"),
                             "--name", "win"]) == 0
    targets = {serial: tmp_path / f"{serial}.img" for serial in SIZES}
    for serial, path in targets.items():
        with open(path, "wb") as handle:
            handle.truncate(SIZES[serial])
    machine_file = tmp_path / "two-nvme.yaml"
    machine_file.write_text(MACHINE)
    medium = BootMedium(live_image.iso, mode="kernel", append="recovery.run=shell")
    disks = {"small": targets["NVME-SMALL-0001"], "large": targets["NVME-LARGE-0001"],
             "store": store}
    with VM(load_machine(machine_file), medium, tmp_path / "vm", disks, timeout=1800) as vm:
        vm.wait_for("Shell: type 'exit'", timeout=BOOT_TIMEOUT)
        vm.wait_for(r"# $", timeout=60)
        print(f"shell ready {vm.elapsed:.0f} s after QEMU started")
        vm.shell("dmesg -n 1; mkdir -p /mnt/store && "
                 f"mount -o ro /dev/disk/by-label/{STORE_LABEL} /mnt/store")
        results = {serial: _restore_in_guest(vm, serial) for serial in SIZES}
        vm.shell("umount /mnt/store")
    for serial, action in (("NVME-SMALL-0001", "shrunk"), ("NVME-LARGE-0001", "grown")):
        done = results[serial]
        assert done["ok"] and done["verified"], done
        layout = done["plan"]["layout"]  # type: ignore[index]
        changes = {p["number"]: p for p in layout["partitions"]}
        assert (changes[3]["action"], changes[4]["action"]) == (action, "moved")
        _check_target(disk, store, targets[serial], tmp_path)
