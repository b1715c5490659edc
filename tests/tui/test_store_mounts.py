"""Stores on partitions nobody mounted: a USB drive as the live system sees it, here a loop
device with an ext4 and an NTFS partition holding a store and an ext4 one holding none."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList

from recovery.engine.disks import list_disks
from recovery.errors import StoreError
from recovery.model.disk import Disk
from recovery.store.objects import ChunkStore
from recovery.sys import losetup, ntfs3g
from recovery.sys.mount import mounted
from recovery.sys.mounts import read_mounts
from recovery.sys.run import run
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.storemounts import StoreMounts
from recovery.ui.tui.stores import NEW_STORE_DIR
from tests.tui.conftest import SIZE, asynctest, wait_for

MiB = 1024 * 1024
SECTOR = 512
# (number, start sector, size, fs, holds a store)
LAYOUT = [(1, 2048, 24 * MiB, "ext4", True), (2, 51200, 40 * MiB, "ntfs", True),
          (3, 133120, 24 * MiB, "ext4", False)]


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


def _ours(root: Path) -> list[str]:
    return sorted(m.mountpoint for m in read_mounts() if m.mountpoint.startswith(str(root)))


def _drive(device: Path) -> Disk:
    return next(d for d in list_disks() if d.node == device)


@pytest.fixture
def mounts(tmp_path: Path, usb_drive: Path) -> Iterator[StoreMounts]:
    root = tmp_path / "stores"
    lines: list[str] = []
    store_mounts = StoreMounts(root, log=lines.append,
                               accept=lambda disk: disk.node == usb_drive)
    try:
        yield store_mounts
    finally:
        store_mounts.close()
        assert _ours(root) == [], lines  # every mount is gone, even after a failure


def test_stores_on_unmounted_partitions_are_mounted_read_only(
        usb_drive: Path, mounts: StoreMounts, tmp_path: Path) -> None:
    root = mounts.root
    backend = Backend(store_mounts=mounts)
    stores = backend.stores([_drive(usb_drive)])
    name = usb_drive.name
    assert sorted(s.path for s in stores) == [root / f"{name}-1", root / f"{name}-2" / "images"]
    # The partition without a store was looked at and let go.
    assert _ours(root) == [str(root / f"{name}-1"), str(root / f"{name}-2")]
    for store in stores:
        with pytest.raises(OSError) as refused:
            (store.path / "probe").write_bytes(b"x")
        assert refused.value.errno == errno.EROFS

    # The drive now holds the stores: never a restore target, never scanned twice.
    disks = list_disks()
    for store in stores:
        assert usb_drive in [d.node for d in backend.disks_holding(store.path, disks)]
    assert backend.stores(disks) == stores

    # A capture makes its store writable; the other one stays read-only.
    backend.writable_store(stores[1].path)
    ChunkStore.open(stores[1].path).begin_image("written-after-remount")
    assert (stores[1].path / "images" / "written-after-remount.partial").is_dir()
    with pytest.raises(OSError):
        (stores[0].path / "probe").write_bytes(b"x")

    backend.close()
    assert _ours(root) == []


@asynctest
async def test_home_screen_lists_a_store_nobody_mounted(usb_drive: Path, mounts: StoreMounts,
                                                        tmp_path: Path) -> None:
    app = RecoveryApp(Backend(store_mounts=mounts, hotplug=False),
                      ActionLog(tmp_path / "tui.log"))
    wanted = str(mounts.root / f"{usb_drive.name}-1")
    async with app.run_test(size=SIZE) as pilot:
        def listed(pilot: Any = pilot) -> bool:
            screen = app.screen
            if not isinstance(screen, HomeScreen):
                return False
            options = screen.query_one("#stores", OptionList)
            return any(options.get_option_at_index(i).id == wanted
                       for i in range(options.option_count))
        await wait_for(pilot, listed, f"the store at {wanted}", attempts=600)


def test_a_mount_whose_fuse_daemon_died_does_not_hide_the_other_stores(
        usb_drive: Path, mounts: StoreMounts, tmp_path: Path) -> None:
    """A USB drive pulled while ntfs-3g had it mounted leaves a mount that answers every
    stat with ENOTCONN; the scan must pass over it, not fail on it."""
    image = tmp_path / "pulled.img"
    with open(image, "wb") as handle:
        handle.truncate(32 * MiB)
    ntfs3g.mkntfs(image, label="PULLED")
    dead = tmp_path / "pulled"
    dead.mkdir()
    device = losetup.attach(image)
    try:
        run(["ntfs-3g", str(device), str(dead)])
        ChunkStore.open(dead, create=True)
        run(["pkill", "-KILL", "-f", f"ntfs-3g {device} "])
        with pytest.raises(OSError) as gone:
            (dead / "recovery-store.yaml").stat()
        assert gone.value.errno == errno.ENOTCONN
        assert str(dead) in [m.mountpoint for m in read_mounts()]

        stores = Backend(store_mounts=mounts).stores(list_disks())
        paths = [s.path for s in stores]
        assert mounts.root / f"{usb_drive.name}-1" in paths and dead not in paths
        # Named directly (`--store`), it is explained, not a traceback.
        with pytest.raises(StoreError, match="does not answer"):
            ChunkStore.open(dead)
    finally:
        run(["umount", "-l", str(dead)], check=False)
        losetup.detach(device)


def test_a_file_system_without_a_store_is_offered_for_a_new_one(
        usb_drive: Path, mounts: StoreMounts, tmp_path: Path) -> None:
    """Partition 3 (ext4, no store): listed with its size and free space, mounted
    read-write under the mount root when chosen, read-only again after the capture."""
    backend = Backend(store_mounts=mounts)
    drive = _drive(usb_drive)
    stores = backend.stores([drive])
    places = backend.new_store_places([drive], None, stores)
    assert [p.partition.number for p in places] == [3]  # 1 and 2 hold the listed stores
    place = places[0]
    assert place.free_bytes is not None and 0 < place.free_bytes < place.size <= 24 * MiB
    assert "MB free" in place.describe()
    # The source disk is never offered.
    assert backend.new_store_places([drive], drive, stores) == []

    store = backend.prepare_new_store(place)
    assert store.path == mounts.root / f"{usb_drive.name}-3" / NEW_STORE_DIR
    ChunkStore.open(store.path, create=True).begin_image("first-capture")
    assert (store.path / "images" / "first-capture.partial").is_dir()
    backend.after_writing(store.path)
    with pytest.raises(OSError) as refused:
        (store.path / "probe").write_bytes(b"x")
    assert refused.value.errno == errno.EROFS
    # Now it holds a store: listed as one, no longer as a place for a new one.
    stores = backend.stores(list_disks())
    assert store.path in [s.path for s in stores]
    assert backend.new_store_places([_drive(usb_drive)], None, stores) == []


def test_a_drive_without_a_file_system_is_formatted_for_a_new_store(
        tmp_path: Path, live_udev: None) -> None:
    """Offered as blank; formatted through the safety gate (NTFS: this host's kernel has
    no exFAT driver, the live image's has); its new partition is mounted read-write for
    the store and made read-only after the capture."""
    image = tmp_path / "new-drive.img"
    with open(image, "wb") as handle:
        handle.truncate(96 * MiB)
    root = tmp_path / "stores"
    lines: list[str] = []
    with losetup.loop_device(image) as device:
        run(["udevadm", "settle", "--timeout=30"], check=False)
        mounts = StoreMounts(root, log=lines.append, accept=lambda disk: disk.node == device)
        backend = Backend(store_mounts=mounts)
        try:
            drive = _drive(device)
            assert drive in backend.blank_drives([drive], None)
            assert backend.blank_drives([drive], drive) == []  # never the source disk
            store = backend.format_for_store(drive, "ntfs", None)
            assert store.path.parent == root / f"{device.name}-1"
            ChunkStore.open(store.path, create=True).begin_image("first")
            backend.after_writing(store.path)
            with pytest.raises(OSError):
                (store.path / "probe").write_bytes(b"x")
            assert backend.blank_drives([_drive(device)], None) == []
        finally:
            backend.close()
        assert _ours(root) == [], lines
    probe = run(["blkid", "-p", "-O", str(MiB), "-o", "export", str(image)], check=False)
    assert b"TYPE=ntfs" in probe.stdout
