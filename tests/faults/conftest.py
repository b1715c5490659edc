"""Fixtures: a disk image served through faultyfs, as a file and as a loop device; a small
ext4 USB drive for the store; the engine tests' small Windows-like disk and its image."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk
from recovery.fs.probe import probe_volume
from recovery.sys import losetup
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB
from tests.conftest import ext4_mounted

# The engine tests' session disk and its image "base" (never modified, so shared here).
from tests.engine.conftest import small_disk, small_store  # noqa: F401
from tests.faults.faultyfs import FaultyMount, faulty_mount

MountFactory = Callable[[Path], FaultyMount]
LoopFactory = Callable[[Path], Path]


@pytest.fixture
def mount_faulty(tmp_path: Path) -> Iterator[MountFactory]:
    """mount_faulty(backing_image) -> FaultyMount; unmounted after the test, even on failure."""
    with ExitStack() as stack:
        def factory(backing: Path) -> FaultyMount:
            mountpoint = tmp_path / f"faulty-{backing.stem}"
            return stack.enter_context(faulty_mount(backing, mountpoint))

        yield factory


@pytest.fixture
def loop_over() -> Iterator[LoopFactory]:
    """loop_over(file) -> /dev/loopN; detached after the test, before the FUSE unmount."""
    with ExitStack() as stack:
        def factory(image: Path) -> Path:
            return stack.enter_context(losetup.loop_device(image))

        yield factory


@pytest.fixture
def usb_drive(make_loop: Callable[..., tuple[Path, Path]], tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB ext4 USB drive for the store, mounted; unmounted even on failure."""
    _, device = make_loop(128 * 1024 * 1024, name="usb.img")
    with ext4_mounted(device, tmp_path / "usb") as mountpoint:
        yield mountpoint


CHUNK = 4 * MiB  # the engine's default chunk: the most one failing write covers


def used_range_in_middle(disk: DemoDisk) -> tuple[int, int]:
    """1 MiB of the Windows volume's used data near its middle, as disk byte offsets."""
    windows = disk.windows
    with BlockDevice.open(disk.path) as device:
        used = probe_volume(device, windows.start, windows.size).used
    big = [(start, length) for start, length in used if length >= 2 * MiB]
    start, _length = big[len(big) // 2]
    return windows.start + start + MiB // 2, windows.start + start + MiB // 2 + MiB


def offset_named(message: str) -> int:
    """The byte offset a DeviceIOError title (or a problem quoting one) names."""
    found = re.search(r"byte offset (\d+)", message)
    assert found, message
    return int(found.group(1))


def blank_disk(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def copy_disk(source: Path, dest: Path) -> Path:
    shutil.copyfile(source, dest)
    return dest
