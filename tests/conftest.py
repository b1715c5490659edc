"""Shared test fixtures: real loop devices, real file systems, the shared Windows data."""

from __future__ import annotations

import lzma
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from recovery.sys import losetup
from recovery.sys.run import run
from tests.usbdrive import live_udev, store_mounts, usb_drive  # noqa: F401 (fixtures)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


UNIT = Path(__file__).resolve().parent / "unit"
AS_ROOT = os.geteuid() == 0


def pytest_configure(config: pytest.Config) -> None:
    # The machine's one-job lock (recovery.sys.joblock): each test session its own, so test
    # runs side by side on one machine do not see each other's jobs.
    os.environ["RECOVERY_LOCK_DIR"] = tempfile.mkdtemp(prefix="recovery-lock-")
    # Folder listings kept between runs (recovery.engine.listcache): the session's own.
    os.environ["RECOVERY_LISTING_CACHE"] = tempfile.mkdtemp(prefix="recovery-listings-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """As root everything runs. As another user only tests/unit can (the parsers and
    models, from bytes and recorded data); its tests marked root skip, naming why."""
    if AS_ROOT:
        return
    outside = sorted({str(item.path.relative_to(UNIT.parent.parent)) for item in items
                      if not item.path.is_relative_to(UNIT)})
    if outside:
        raise pytest.UsageError(
            f"{', '.join(outside[:3])}{' ...' if len(outside) > 3 else ''} use loop devices "
            "and mkfs: run them as root; as an ordinary user run tests/unit.")
    for item in items:
        marker = item.get_closest_marker("root")
        if marker is not None:
            why = marker.args[0] if marker.args else "loop devices and mounts"
            item.add_marker(pytest.mark.skip(reason=f"needs root: {why}"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures missing at {FIXTURES}")
    return FIXTURES


def unpack_hive(name: str, dest: Path) -> Path:
    """A hive from ../shared/fixtures/hives, decompressed into `dest`."""
    source = FIXTURES / "hives" / name
    target = dest / name.removesuffix(".xz")
    if name.endswith(".xz"):
        target.write_bytes(lzma.decompress(source.read_bytes()))
    else:
        target.write_bytes(source.read_bytes())
    return target


@contextmanager
def ext4_mounted(device: Path, mountpoint: Path) -> Iterator[Path]:
    """`device` formatted ext4 and mounted at `mountpoint` (a USB drive holding a store);
    unmounted on exit, even when the test fails."""
    run(["mkfs.ext4", "-q", "-F", "-m", "0", str(device)])
    mountpoint.mkdir(parents=True, exist_ok=True)
    run(["mount", str(device), str(mountpoint)])
    try:
        yield mountpoint
    finally:
        run(["umount", str(mountpoint)], check=False)


@pytest.fixture
def make_loop(tmp_path: Path) -> Iterator[object]:
    """Factory: make_loop(size_bytes, sector_size=512) -> (image_path, /dev/loopN)."""
    attached: list[Path] = []

    def factory(size: int, sector_size: int = 512, name: str = "disk.img"
                ) -> tuple[Path, Path]:
        image = tmp_path / name
        with open(image, "wb") as handle:
            handle.truncate(size)
        device = losetup.attach(image, sector_size=sector_size)
        attached.append(device)
        return image, device

    yield factory
    for device in attached:
        losetup.detach(device)


@pytest.fixture(scope="session", autouse=True)
def release_leftover_loop_devices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A test that dies between losetup and its cleanup must not leave loop devices behind
    for the next test run (or the next CI job on this machine)."""
    yield
    if not AS_ROOT:
        return  # nothing here could attach one
    base = str(tmp_path_factory.getbasetemp())
    for block in Path("/sys/block").glob("loop*"):
        backing = losetup.backing_file(Path("/dev") / block.name)
        if backing is not None and str(backing).startswith(base):
            losetup.detach(Path("/dev") / block.name)
