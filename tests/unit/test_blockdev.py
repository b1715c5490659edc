"""BlockDevice.rotational: what the kernel says about the disk behind a device or a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from recovery.sys.blockdev import BlockDevice

MakeLoop = Callable[..., tuple[Path, Path]]


def _sysfs_rotational(dev: int) -> bool:
    queue = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/queue/rotational")
    return queue.read_text().strip() == "1"


def test_a_loop_device_reports_its_queue(make_loop: MakeLoop) -> None:
    _image, node = make_loop(8 * 1024 * 1024)
    with BlockDevice.open(node) as device:
        assert device.rotational == _sysfs_rotational(os.stat(node).st_rdev)


def test_an_image_file_reports_the_disk_it_lives_on(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(4096))
    dev = os.stat(image).st_dev
    if not Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/queue").exists():
        pytest.skip("tmp_path is on a partition or a virtual file system")
    expected = _sysfs_rotational(dev)
    with BlockDevice.open(image) as device:
        assert device.rotational == expected


def test_an_image_file_on_tmpfs_does_not_spin() -> None:
    with tempfile.NamedTemporaryFile(dir="/dev/shm", suffix=".img") as handle:
        handle.write(bytes(4096))
        handle.flush()
        with BlockDevice.open(handle.name) as device:
            assert not device.rotational
