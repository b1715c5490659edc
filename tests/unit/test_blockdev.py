"""BlockDevice.rotational: whether the disk behind a device or a file is known to spin."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from recovery.sys.blockdev import BlockDevice

MakeLoop = Callable[..., tuple[Path, Path]]


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
