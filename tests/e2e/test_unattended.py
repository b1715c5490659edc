"""Unattended capture and restore inside the live image (issue 5, end-to-end list 1-3, 5).

The guest boots the ISO's own kernel and initrd directly (the boot path has its own tests),
runs one job from the kernel command line, prints RECOVERY-RESULT on the serial console and
powers off; the host then checks the store and the restored disk with its own tools.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pyfsntfs
import pytest

from qemu import VM, BootMedium, load_machine
from recovery.errors import DeviceIOError, UnreadableAreasError, VerificationError
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice
from recovery.ui.cli import main as recovery_cli
from tests.e2e.conftest import LiveImage
from tests.e2e.windisk import (
    WindowsDisk,
    fingerprint,
    make_gpt_disk,
    make_mbr_disk,
    make_store_disk,
    mounted_store_disk,
)

GiB = 1 << 30
STORE_LABEL = "RSTORE"
RESULT = re.compile(r"RECOVERY-RESULT: (PASS|FAIL) (\{.*\})\r?\n")  # whole line only
JOB_TIMEOUT = 900.0


def run_job(image: LiveImage, machine: str | Path, workdir: Path, disks: dict[str, Path],
            options: str) -> tuple[str, dict[str, object]]:
    """Boot with `options`, wait for the result line; PASS must also power the guest off."""
    verdict, report, _ = run_job_with_console(image, machine, workdir, disks, options)
    return verdict, report


def run_job_with_console(image: LiveImage, machine: str | Path, workdir: Path,
                         disks: dict[str, Path], options: str
                         ) -> tuple[str, dict[str, object], str]:
    """run_job, and what the serial console showed up to the result line."""
    medium = BootMedium(image.iso, mode="kernel", append=options)
    with VM(load_machine(machine), medium, workdir, disks, timeout=JOB_TIMEOUT) as vm:
        match = vm.wait_for(RESULT)
        verdict, report = match.group(1), json.loads(match.group(2))
        console = vm.output
        print(f"{machine} {options}: {verdict} after {vm.elapsed:.0f} s")
        if verdict == "PASS":
            assert vm.wait_exit(timeout=120) == 0
    return verdict, report, console


def store_options(job: str, image_name: str) -> str:
    return f"recovery.run={job} recovery.store={STORE_LABEL}:/images recovery.image={image_name}"


def check_store_on_host(store_image: Path, tmp_path: Path, name: str) -> None:
    with mounted_store_disk(store_image, tmp_path / "store-mnt") as root:
        assert recovery_cli(["verify", "--store", str(root / "images"), name]) == 0


def round_trip(live_image: LiveImage, tmp_path: Path, machine: str, disk: WindowsDisk,
               store: Path, serial: str, name: str) -> None:
    original = fingerprint(disk)
    disks = {"system": disk.image, "store": store}
    verdict, report = run_job(live_image, machine, tmp_path / "capture", disks,
                              f"{store_options('capture', name)} recovery.source={serial}")
    assert verdict == "PASS", report
    check_store_on_host(store, tmp_path, name)

    size = disk.image.stat().st_size
    with open(disk.image, "r+b") as handle:  # wipe: the restore must bring back everything
        handle.truncate(0)
        handle.truncate(size)
    verdict, report = run_job(live_image, machine, tmp_path / "restore", disks,
                              f"{store_options('restore', name)} recovery.target={serial} "
                              "recovery.yes=1")
    assert verdict == "PASS", report
    assert fingerprint(disk) == original


def test_mbr_disk_on_sata_bios_capture_wipe_restore(live_image: LiveImage,
                                                    tmp_path: Path) -> None:
    disk = make_mbr_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    store = tmp_path / "store.img"
    make_store_disk(store, 4 * GiB, STORE_LABEL)
    round_trip(live_image, tmp_path, "bios-sata-usb", disk, store, "SATA-SYS-0001", "win-mbr")


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


@pytest.fixture
def captured_store(captured_gpt: CapturedGpt) -> tuple[Path, Path]:
    return captured_gpt.disk.image, captured_gpt.store


def test_gpt_disk_on_nvme_uefi_capture_wipe_restore(live_image: LiveImage, tmp_path: Path,
                                                    captured_gpt: CapturedGpt) -> None:
    # Wiped in place (the partition table dump names the image file): the fault tests that
    # follow only need a disk of this size, whatever it holds.
    target = captured_gpt.disk
    size = target.image.stat().st_size
    with open(target.image, "r+b") as handle:
        handle.truncate(0)
        handle.truncate(size)
    # Restoring only reads the store: the fault tests after this one can share it.
    verdict, report = run_job(live_image, "uefi-nvme-usb", tmp_path / "restore",
                              {"system": target.image, "store": captured_gpt.store},
                              f"{store_options('restore', 'win')} recovery.target=NVME-SYS-0001 "
                              "recovery.yes=1")
    assert verdict == "PASS", report
    assert fingerprint(target) == captured_gpt.original


def test_restore_onto_a_disk_that_fails_writes_reports_the_error(
        live_image: LiveImage, tmp_path: Path, captured_store: tuple[Path, Path]) -> None:
    captured_system, store = captured_store
    system = tmp_path / "system.img"
    shutil.copyfile(captured_system, system)
    verdict, report = run_job(live_image, "uefi-nvme-faulty", tmp_path / "faulty",
                              {"system": system, "store": store},
                              f"{store_options('restore', 'win')} recovery.target=NVME-BAD-0001 "
                              "recovery.yes=1")
    assert verdict == "FAIL"
    error = report["result"]["error"]  # type: ignore[index]
    assert error["code"] == DeviceIOError.code, report  # the device refused the write


def test_verify_of_a_store_with_a_damaged_chunk_fails_on_serial(
        live_image: LiveImage, tmp_path: Path, captured_store: tuple[Path, Path]) -> None:
    system, captured = captured_store
    store = tmp_path / "damaged-store.img"
    shutil.copyfile(captured, store)
    with mounted_store_disk(store, tmp_path / "damage", read_write=True) as root:
        chunk = max((p for p in (root / "images" / "chunks").rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size)
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    verdict, report = run_job(live_image, "uefi-nvme-usb", tmp_path / "verify",
                              {"system": system, "store": store},
                              store_options("verify", "win"))
    assert verdict == "FAIL"
    assert report["exit_status"] == VerificationError.code, report


def test_rescue_capture_of_a_disk_with_bad_sectors(live_image: LiveImage,
                                                   tmp_path: Path) -> None:
    """blkdebug fails reads of chosen sectors inside one file's data: the unattended rescue
    capture completes with exit 14 and lists exactly those sectors, and names the file."""
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    windows = next(v for v in disk.volumes if v.number == 3)
    path, first = file_sector(disk.image, windows.start, windows.size)
    bad = (first, first + 1, first + 9)  # two touching sectors and one on its own
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
    assert disk.image.read_bytes() == before  # the source was never written
    with mounted_store_disk(store, tmp_path / "store-mnt") as root:
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
