"""A USB drive as the live system sees it, for the store-finding tests of the engine and
the TUI: a loop device with an ext4 and an NTFS partition holding a store and an ext4 one
holding none, no partition mounted."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.engine.disks import list_disks
from recovery.engine.storemounts import StoreMounts
from recovery.model.disk import Disk
from recovery.store.objects import ChunkStore
from recovery.sys import losetup, ntfs3g
from recovery.sys.mount import mounted
from recovery.sys.mounts import read_mounts
from recovery.sys.run import run

MiB = 1024 * 1024
SECTOR = 512
# (number, start sector, size, fs, holds a store)
LAYOUT = [(1, 2048, 24 * MiB, "ext4", True), (2, 51200, 40 * MiB, "ntfs", True),
          (3, 133120, 24 * MiB, "ext4", False)]


@pytest.fixture(scope="session")
def live_udev() -> None:
    """The udev daemon must run for hot-plug events and a filled-in udev database."""
    if subprocess.run(["pgrep", "-x", "systemd-udevd"], capture_output=True).returncode != 0:
        daemon = shutil.which("systemd-udevd") or "/lib/systemd/systemd-udevd"
        subprocess.run([daemon, "--daemon"], check=True)
        subprocess.run(["udevadm", "trigger"], check=False)
    subprocess.run(["udevadm", "settle", "--timeout=30"], check=False)

def _format(image: Path, start: int, size: int, fs: str, store: bool, scratch: Path) -> None:
    offset = start * SECTOR
    if fs == "ntfs":
        ntfs3g.mkntfs(image, offset, size, label="STORE")
        if store:
            with ntfs3g.mount(image, offset, scratch, True, size=size) as point:
                ChunkStore.open(point / "images", create=True)  # one folder down
        return
    with losetup.loop_device(image, offset=offset, size=size) as device:
        run(["mkfs.ext4", "-q", "-F", str(device)])
        with mounted(device, "ext4", scratch) as point:
            if store:
                ChunkStore.open(point, create=True)
            else:
                (point / "photos").mkdir()


@pytest.fixture(params=["by-offset", "partition-nodes"])
def usb_drive(request: pytest.FixtureRequest, tmp_path: Path, live_udev: None
              ) -> Iterator[Path]:
    """The loop device of a drive with two stores and no partition mounted; its partitions
    reached by offset (no nodes), or through loopNpM nodes as a real USB drive's sdb1."""
    image = tmp_path / "usb.img"
    with open(image, "wb") as handle:
        handle.truncate(96 * MiB)
    argv = ["sgdisk", "--clear"]
    for number, start, size, fs, _ in LAYOUT:
        code = "0700" if fs == "ntfs" else "8300"
        argv += ["-n", f"{number}:{start}:+{size // 1024}K", "-t", f"{number}:{code}"]
    run([*argv, str(image)])
    for _number, start, size, fs, store in LAYOUT:
        _format(image, start, size, fs, store, tmp_path / "scratch")
    device = losetup.attach(image)
    try:
        if request.param == "partition-nodes":
            losetup.add_partitions(device)
            run(["udevadm", "settle", "--timeout=30"], check=False)
        yield device
    finally:
        losetup.detach(device)


def ours(root: Path) -> list[str]:
    return sorted(m.mountpoint for m in read_mounts() if m.mountpoint.startswith(str(root)))


def drive_of(device: Path) -> Disk:
    return next(d for d in list_disks() if d.node == device)


@pytest.fixture
def store_mounts(tmp_path: Path, usb_drive: Path) -> Iterator[StoreMounts]:
    root = tmp_path / "stores"
    lines: list[str] = []
    mounts = StoreMounts(root, log=lines.append, accept=lambda disk: disk.node == usb_drive)
    try:
        yield mounts
    finally:
        mounts.close()
        assert ours(root) == [], lines  # every mount is gone, even after a failure


