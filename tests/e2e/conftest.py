"""The live ISO, built once per test session (image-build/build.sh caches it in build/)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from qemu import VM, BootMedium, DiskSpec, Machine, load_machine
from tests.e2e.windisk import WindowsDisk, fingerprint, make_mbr_disk

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO / "build"
BOOT_TIMEOUT = 240.0  # seconds from QEMU start to the console marker, under TCG


@dataclass(frozen=True)
class LiveImage:
    iso: Path
    kernel: Path
    initrd: Path
    manifest: Path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    # The tests sharing the BIOS boot run last, one after the other: a session fixture
    # lives until the session ends, and its guest would otherwise idle beside every later
    # boot (stable sort: the order among them and among the rest stays).
    items.sort(key=lambda item: "bios_guest" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def live_image() -> LiveImage:
    """Runs the one build command; a no-op when its inputs did not change since last time."""
    result = subprocess.run([str(REPO / "image-build" / "build.sh"), str(BUILD_DIR)],
                            capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"image-build/build.sh failed ({result.returncode}):\n"
                    f"{result.stderr[-4000:]}")
    image = LiveImage(iso=BUILD_DIR / "recovery.iso", kernel=BUILD_DIR / "vmlinuz",
                      initrd=BUILD_DIR / "initrd.img",
                      manifest=BUILD_DIR / "recovery.iso.manifest")
    for path in (image.iso, image.kernel, image.initrd, image.manifest):
        assert path.is_file(), f"the build did not produce {path}"
    return image


def start_shell_vm(image: LiveImage, machine: str | Machine, workdir: Path,
                   disks: dict[str, Path] | None = None) -> VM:
    """A running VM at a root shell on serial (recovery.run=shell); the caller stops it."""
    vm = VM(machine if isinstance(machine, Machine) else load_machine(machine),
            BootMedium(image.iso, mode="kernel", append="recovery.run=shell"), workdir, disks,
            timeout=3600)
    vm.__enter__()
    try:
        vm.wait_for("Shell: type 'exit'", timeout=BOOT_TIMEOUT)
        vm.wait_for(r"# $", timeout=60)
    except BaseException:
        vm.__exit__(None, None, None)
        raise
    return vm


@dataclass(frozen=True)
class BiosGuest:
    """One BIOS PC (bios-sata-usb and a virtio disk) at a shell, shared by the tests that
    each need only a BIOS boot: the shell and its tools (test_boot), the MBR capture and
    restore (test_unattended), the restore-point rollback (test_rollback)."""

    vm: VM
    mbr: WindowsDisk  # on SATA-SYS-0001
    mbr_original: dict[str, object]  # its fingerprint before the boot
    store: Path  # ext4 stick RSTORE holding image "pc" (a GPT disk) in /images
    esp_files: dict[str, str]  # image "pc": SHA-256 of each file in its ESP's boot folder
    rollback: Path  # on VIRTIO-SYS-0001: SYSTEM hive corrupt, a restore point has it good


@pytest.fixture(scope="session")
def bios_guest(live_image: LiveImage, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[BiosGuest]:
    # The tests' own disk builders (imported here: those modules import this one).
    from tests.e2e.test_boot import captured_store_stick
    from tests.e2e.test_rollback import broken_windows_disk

    tmp_path = tmp_path_factory.mktemp("bios-guest")
    mbr = make_mbr_disk(tmp_path / "windows.img", 2 * (1 << 30), tmp_path / "build")
    original = fingerprint(mbr)
    store, esp_files = captured_store_stick(tmp_path / "stick")
    rollback = broken_windows_disk(tmp_path / "rollback")
    base = load_machine("bios-sata-usb")
    machine = replace(base, disks=(*base.disks, DiskSpec(
        "rollback", "virtio", "VIRTIO-SYS-0001", rollback.stat().st_size)))
    vm = start_shell_vm(live_image, machine, tmp_path / "vm",
                        {"system": mbr.image, "store": store, "rollback": rollback})
    try:
        yield BiosGuest(vm, mbr, original, store, esp_files, rollback)
    finally:
        vm.__exit__(None, None, None)
