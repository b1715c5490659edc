"""Unattended capture and restore inside the live image (issue 5, end-to-end list 1-3, 5).

The guest boots the ISO's own kernel and initrd directly (the boot path has its own tests),
runs one job from the kernel command line, prints RECOVERY-RESULT on the serial console and
powers off; the host then checks the store and the restored disk with its own tools.
Where one boot can serve several jobs (the MBR capture and its restore; the GPT restore and
the two fault jobs), a shell boot runs each job as the service does
(`python3 -m recovery.ui.unattended`), its options in a file in place of /proc/cmdline:
every QEMU boot costs 30-90 s before any work starts.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyfsntfs
import pytest

from qemu import VM, BootMedium, DiskSpec, load_machine
from recovery.errors import DeviceIOError, UnreadableAreasError, VerificationError
from recovery.store.objects import ChunkStore
from recovery.sys import losetup
from recovery.sys.blockdev import BlockDevice
from recovery.sys.run import run
from recovery.sys.slice import DeviceSlice
from recovery.ui.cli import main as recovery_cli
from tests.e2e.conftest import BiosGuest, LiveImage, start_shell_vm
from tests.e2e.windisk import (
    WindowsDisk,
    fingerprint,
    make_gpt_disk,
    make_store_disk,
    mounted_store_disk,
    sparse_copy,
)

GiB = 1 << 30
MiB = 1 << 20
STORE_LABEL = "RSTORE"
DAMAGED_LABEL = "RDAMAGED"  # a copy of the store with one chunk damaged
RESULT = re.compile(r"RECOVERY-RESULT: (PASS|FAIL) (\{.*\})\r?\n")  # whole line only
JOB_TIMEOUT = 900.0


def run_job(image: LiveImage, machine: str | Path, workdir: Path, disks: dict[str, Path],
            options: str) -> tuple[str, dict[str, object]]:
    """Boot with `options`, wait for the result line; PASS must also power the guest off."""
    medium = BootMedium(image.iso, mode="kernel", append=options)
    with VM(load_machine(machine), medium, workdir, disks, timeout=JOB_TIMEOUT) as vm:
        match = vm.wait_for(RESULT)
        verdict, report = match.group(1), json.loads(match.group(2))
        print(f"{machine} {options}: {verdict} after {vm.elapsed:.0f} s")
        if verdict == "PASS":
            assert vm.wait_exit(timeout=120) == 0
    return verdict, report


def store_options(job: str, image_name: str) -> str:
    return f"recovery.run={job} recovery.store={STORE_LABEL}:/images recovery.image={image_name}"


def guest_job(vm: VM, options: str) -> tuple[str, dict[str, object], str]:
    """In a shell boot: one job run as recovery-unattended.service runs it, `options` read
    from a file in place of the kernel command line; verdict, report and what it printed."""
    output = vm.shell(f"echo {shlex.quote(options)} > /tmp/job.cmdline && "
                      "python3 -m recovery.ui.unattended --cmdline /tmp/job.cmdline",
                      timeout=JOB_TIMEOUT, check=False)
    match = RESULT.search(output + "\n")
    assert match, f"no result line for {options}:\n{output[-3000:]}"
    print(f"{vm.machine.name} {options}: {match.group(1)} at {vm.elapsed:.0f} s")
    return match.group(1), json.loads(match.group(2)), output


def wipe_under_guest(vm: VM, image: Path, node: str) -> None:
    """Zero a disk the running guest has (its image file truncated to nothing and back),
    then make the guest forget what it cached of it and read its partition table again."""
    size = image.stat().st_size
    with open(image, "r+b") as handle:
        handle.truncate(0)
        handle.truncate(size)
    vm.shell(f"blockdev --flushbufs {node} && echo 3 > /proc/sys/vm/drop_caches && "
             f"blockdev --rereadpt {node} && udevadm settle && "
             f"! blkid -p {node} >/dev/null")  # nothing found on it: really blank now


def check_store_on_host(store_image: Path, tmp_path: Path, name: str) -> None:
    with mounted_store_disk(store_image, tmp_path / "store-mnt") as root:
        assert recovery_cli(["verify", "--store", str(root / "images"), name]) == 0


def test_mbr_disk_on_sata_bios_capture_wipe_restore(bios_guest: BiosGuest,
                                                    tmp_path: Path) -> None:
    """Capture, host check of the store, wipe, restore, in the shared BIOS boot (its store
    stick holds image "pc" already; this adds "win-mbr")."""
    disk, store, vm = bios_guest.mbr, bios_guest.store, bios_guest.vm
    serial, name = "SATA-SYS-0001", "win-mbr"
    verdict, report, _ = guest_job(vm, f"{store_options('capture', name)} "
                                       f"recovery.source={serial}")
    assert verdict == "PASS", report
    # The job has unmounted the store in the guest: the host may read it now.
    check_store_on_host(store, tmp_path, name)
    node = vm.shell(f"readlink -f /dev/disk/by-id/ata-*{serial}").strip()
    wipe_under_guest(vm, disk.image, node)  # the restore must bring back everything
    verdict, report, _ = guest_job(vm, f"{store_options('restore', name)} "
                                       f"recovery.target={serial} recovery.yes=1")
    assert verdict == "PASS", report
    vm.shell("sync")
    assert fingerprint(disk) == bios_guest.mbr_original


@dataclass(frozen=True)
class CapturedGpt:
    disk: WindowsDisk
    original: dict[str, object]  # fingerprint(disk) before the capture
    store: Path


@pytest.fixture(scope="module")
def captured_gpt(live_image: LiveImage, tmp_path_factory: pytest.TempPathFactory
                 ) -> CapturedGpt:
    """A GPT disk on NVMe (UEFI) captured in the guest once into image 'win', checked on the
    host; the restore and fault tests share it (one boot fewer each) and copy what they
    change."""
    tmp_path = tmp_path_factory.mktemp("captured")
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    original = fingerprint(disk)
    store = tmp_path / "store.img"
    make_store_disk(store, 4 * GiB, STORE_LABEL)
    verdict, report = run_job(live_image, "uefi-nvme-usb", tmp_path / "capture",
                              {"system": disk.image, "store": store},
                              f"{store_options('capture', 'win')} recovery.source=NVME-SYS-0001")
    assert verdict == "PASS", report
    check_store_on_host(store, tmp_path, "win")
    return CapturedGpt(disk, original, store)


@dataclass(frozen=True)
class JobGuest:
    vm: VM
    target: Path  # the captured disk, wiped before the boot


@pytest.fixture(scope="module")
def job_guest(live_image: LiveImage, tmp_path_factory: pytest.TempPathFactory,
              captured_gpt: CapturedGpt) -> Iterator[JobGuest]:
    """One shell boot for the jobs that read the captured store: a UEFI PC with the wiped
    captured disk (NVME-SYS-0001), an NVMe disk that fails every write (a copy of the
    captured one), the store and a copy of it with one chunk damaged (label RDAMAGED)."""
    tmp_path = tmp_path_factory.mktemp("jobs")
    faulty = tmp_path / "faulty.img"
    sparse_copy(captured_gpt.disk.image, faulty)
    # Wiped in place (the partition table dump names the image file): the restore must
    # bring back everything.
    target = captured_gpt.disk.image
    size = target.stat().st_size
    with open(target, "r+b") as handle:
        handle.truncate(0)
        handle.truncate(size)
    damaged = damaged_copy(captured_gpt.store, tmp_path)
    base = load_machine("uefi-nvme-faulty")
    machine = replace(base, disks=(
        *base.disks, DiskSpec("target", "nvme", "NVME-SYS-0001", size),
        DiskSpec("damaged", "usb", "USB-DAMAGED-0001", damaged.stat().st_size)))
    vm = start_shell_vm(live_image, machine, tmp_path / "vm",
                        {"system": faulty, "store": captured_gpt.store, "target": target,
                         "damaged": damaged})
    try:
        yield JobGuest(vm, target)
    finally:
        vm.__exit__(None, None, None)


def damaged_copy(store: Path, tmp_path: Path) -> Path:
    """A copy of the store disk with one byte of its biggest chunk flipped, relabelled."""
    copy = tmp_path / "damaged-store.img"
    sparse_copy(store, copy)
    with mounted_store_disk(copy, tmp_path / "damage", read_write=True) as root:
        chunk = max((p for p in (root / "images" / "chunks").rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size)
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    size = copy.stat().st_size
    with losetup.loop_device(copy, offset=MiB, size=size - MiB, read_only=False) as device:
        run(["e2label", str(device), DAMAGED_LABEL])
    return copy


def test_gpt_disk_on_nvme_uefi_capture_wipe_restore(job_guest: JobGuest,
                                                    captured_gpt: CapturedGpt) -> None:
    verdict, report, _ = guest_job(job_guest.vm, f"{store_options('restore', 'win')} "
                                                 "recovery.target=NVME-SYS-0001 recovery.yes=1")
    assert verdict == "PASS", report
    job_guest.vm.shell("sync")
    assert fingerprint(captured_gpt.disk) == captured_gpt.original


def test_restore_onto_a_disk_that_fails_writes_reports_the_error(job_guest: JobGuest) -> None:
    verdict, report, _ = guest_job(job_guest.vm, f"{store_options('restore', 'win')} "
                                                 "recovery.target=NVME-BAD-0001 recovery.yes=1")
    assert verdict == "FAIL"
    error = report["result"]["error"]  # type: ignore[index]
    assert error["code"] == DeviceIOError.code, report  # the device refused the write


def test_verify_of_a_store_with_a_damaged_chunk_fails_on_serial(job_guest: JobGuest) -> None:
    options = (f"recovery.run=verify recovery.store={DAMAGED_LABEL}:/images "
               "recovery.image=win")
    verdict, report, _ = guest_job(job_guest.vm, options)
    assert verdict == "FAIL"
    assert report["exit_status"] == VerificationError.code, report


def test_rescue_capture_of_a_disk_with_bad_sectors(live_image: LiveImage,
                                                   tmp_path: Path) -> None:
    """blkdebug fails reads of chosen sectors inside one file's data and in the disk's own
    areas (the backup GPT's first entry sector and its header): the unattended rescue
    capture completes with exit 14, takes the table from the primary GPT, lists exactly
    those sectors (per partition and under disk_unreadable, in the manifest too) and names
    the file. One boot for both kinds of damage (CI time)."""
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    windows = next(v for v in disk.volumes if v.number == 3)
    path, first = file_sector(disk.image, windows.start, windows.size)
    last = 2 * GiB // 512 - 1  # the backup GPT header; its entries start 32 sectors before
    # In the file two touching sectors and one on its own; two in the backup GPT.
    bad = (first, first + 1, first + 9, last - 32, last)
    store = tmp_path / "store.img"
    make_store_disk(store, 4 * GiB, STORE_LABEL)
    base = load_machine("uefi-nvme-usb")
    system = replace(base.disk("system"), fault="read-error", bad_sectors=bad)
    machine = replace(base, disks=tuple(system if d.name == "system" else d
                                        for d in base.disks))
    medium = BootMedium(live_image.iso, mode="kernel", append=(
        f"{store_options('capture', 'rescued')} recovery.source=NVME-SYS-0001 "
        "recovery.rescue=1"))
    before = disk.image.read_bytes()
    with VM(machine, medium, tmp_path / "rescue", {"system": disk.image, "store": store},
            timeout=JOB_TIMEOUT) as vm:
        match = vm.wait_for(RESULT)
        verdict, report = match.group(1), json.loads(match.group(2))
    assert verdict == "FAIL" and report["exit_status"] == UnreadableAreasError.code, report
    result = report["result"]
    assert isinstance(result, dict)
    part = next(p for p in result["partitions"] if p["number"] == 3)
    start = windows.start
    assert [(r["offset"], r["length"]) for r in part["unreadable"]] == [
        (first * 512 - start, 1024), ((first + 9) * 512 - start, 512)]
    assert [(d["kind"], d["path"]) for d in part["damaged"]] == [("file-data", path)]
    areas = [("backup-gpt", (last - 32) * 512, 512), ("backup-gpt", last * 512, 512)]
    assert result["table_copy"] == "primary"
    assert [(d["area"], d["offset"], d["length"]) for d in result["disk_unreadable"]] == areas
    assert disk.image.read_bytes() == before  # the source was never written
    with mounted_store_disk(store, tmp_path / "store-mnt") as root:
        manifest = ChunkStore.open(root / "images").load_image("rescued")[0]
        assert [(d.area, d.offset, d.length) for d in manifest.disk_unreadable] == areas
        assert manifest.unreadable_bytes == 5 * 512
        assert recovery_cli(["verify", "--store", str(root / "images"), "rescued"]) == 0


def file_sector(image: Path, start: int, size: int) -> tuple[str, int]:
    """The biggest file of the NTFS volume at `start` and a disk sector in the middle of its
    first extent (at least 16 sectors from the extent's end)."""
    with BlockDevice.open(image) as device:
        volume = pyfsntfs.volume()
        volume.open_file_object(DeviceSlice(device, start, size))
        try:
            root = volume.get_root_directory()
            files = [(entry.get_size(), f"\\{folder.get_name()}\\{entry.get_name()}", entry)
                     for folder in root.sub_file_entries if folder.get_name().startswith("dir")
                     for entry in folder.sub_file_entries]
            _, path, entry = max(files, key=lambda item: item[0])
            offset, length, _ = entry.get_extent(0)
        finally:
            volume.close()
    assert length >= 64 * 1024, path
    return path, (start + offset + length // 2) // 512
