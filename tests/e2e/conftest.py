"""The live ISO, built once per test session (image-build/build.sh caches it in build/)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qemu import VM, BootMedium, load_machine

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


@pytest.fixture
def boot_shell(live_image: LiveImage, tmp_path: Path) -> Iterator[object]:
    """Factory: boot_shell(machine, disks=None) -> a running VM at a root shell on serial."""
    vms: list[VM] = []

    def factory(machine: str, disks: dict[str, Path] | None = None) -> VM:
        vm = VM(load_machine(machine), BootMedium(live_image.iso, mode="kernel",
                                                  append="recovery.run=shell"),
                tmp_path / f"vm-{machine}-{len(vms)}", disks, timeout=600)
        vms.append(vm)
        vm.__enter__()
        vm.wait_for("Shell: type 'exit'", timeout=BOOT_TIMEOUT)
        vm.wait_for(r"# $", timeout=60)
        return vm

    yield factory
    for vm in vms:
        vm.__exit__(None, None, None)
