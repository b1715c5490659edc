"""BlockDevice.rotational: whether the disk behind a device or a file is known to spin."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from recovery.errors import TargetInUseError
from recovery.sys import losetup
from recovery.sys.blockdev import BlockDevice
from recovery.sys.run import run, run_text
from tests.conftest import ext4_mounted

MakeLoop = Callable[..., tuple[Path, Path]]


@pytest.mark.root("loop devices, mounts and O_EXCL opens of block devices")
def test_a_loop_device_answers_for_the_disk_of_its_file(make_loop: MakeLoop) -> None:
    image, node = make_loop(8 * 1024 * 1024)
    with BlockDevice.open(image) as backing, BlockDevice.open(node) as loop:
        assert loop.rotational == backing.rotational


def test_a_virtio_disk_is_not_known_to_spin(tmp_path: Path) -> None:
    """virtio-blk always sets rotational 1 (the kernel's default); it tells nothing."""
    dev = os.stat(tmp_path).st_dev
    sysfs = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if "/virtio" not in os.path.realpath(sysfs):
        pytest.skip("tmp_path is not on a virtio disk")
    assert (sysfs / "queue" / "rotational").read_text().strip() == "1"
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(4096))
    with BlockDevice.open(image) as device:
        assert not device.rotational


def test_an_image_file_on_tmpfs_does_not_spin() -> None:
    with tempfile.NamedTemporaryFile(dir="/dev/shm", suffix=".img") as handle:
        handle.write(bytes(4096))
        handle.flush()
        with BlockDevice.open(handle.name) as device:
            assert not device.rotational


@pytest.mark.root("loop devices, mounts and O_EXCL opens of block devices")
def test_a_disk_opened_for_writing_is_held_exclusively(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    # Partition scanning on, as for a real disk: the kernel re-reads tables on request.
    node = Path(run_text(["losetup", "--find", "--show", "--partscan", str(image)]).strip())
    try:
        with BlockDevice.open(node, writable=True) as device:
            with pytest.raises(TargetInUseError, match="in use"):
                BlockDevice.open(node, writable=True)  # a second console's restore
            BlockDevice.open(node).close()  # reading is still allowed
            assert device.read_uncached(0, 4096) == bytes(4096)
            # sgdisk writes a table beside us; its own re-read request, like any other
            # program's, is refused while we hold the disk...
            run(["sgdisk", "--clear", "--new=1:2048:+4M", str(node)])
            assert run(["blockdev", "--rereadpt", str(node)], check=False).returncode != 0
            # ...and granted to the holder, which is why a restore asks at the end.
            assert device.reread_partitions()
        run(["blockdev", "--rereadpt", str(node)])  # released on close
        assert not BlockDevice.open(image, writable=True).reread_partitions()  # a file
    finally:
        losetup.detach(node)


@pytest.mark.root("loop devices, mounts and O_EXCL opens of block devices")
def test_a_disk_with_a_mounted_file_system_cannot_be_opened_for_writing(
        make_loop: MakeLoop, tmp_path: Path) -> None:
    _image, node = make_loop(32 * 1024 * 1024)
    with ext4_mounted(node, tmp_path / "mnt"):
        with pytest.raises(TargetInUseError):
            BlockDevice.open(node, writable=True)
        # A check that does not claim the disk (registry's "can it be written") still works.
        BlockDevice.open(node, writable=True, exclusive=False).close()
