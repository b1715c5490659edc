"""Stores on partitions nobody mounted (the engine's StoreMounts): a USB drive as the live
system sees it (tests/usbdrive.py), here a loop device with an ext4 and an NTFS partition
holding a store and an ext4 one holding none."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from recovery.engine.disks import disks_holding, list_disks
from recovery.engine.storemounts import StoreMounts
from recovery.engine.storescan import NEW_STORE_DIR, blank_drives
from recovery.errors import StoreError
from recovery.store.objects import ChunkStore
from recovery.sys import losetup, ntfs3g
from recovery.sys.mounts import read_mounts
from recovery.sys.run import run
from tests.usbdrive import drive_of, ours

MiB = 1024 * 1024


def test_stores_on_unmounted_partitions_are_mounted_read_only(
        usb_drive: Path, store_mounts: StoreMounts, tmp_path: Path) -> None:
    root = store_mounts.root
    stores = store_mounts.stores([drive_of(usb_drive)])
    name = usb_drive.name
    assert sorted(s.path for s in stores) == [root / f"{name}-1", root / f"{name}-2" / "images"]
    # The partition without a store was looked at and let go.
    assert ours(root) == [str(root / f"{name}-1"), str(root / f"{name}-2")]
    for store in stores:
        with pytest.raises(OSError) as refused:
            (store.path / "probe").write_bytes(b"x")
        assert refused.value.errno == errno.EROFS

    # The drive now holds the stores: never a restore target, never scanned twice.
    disks = list_disks()
    for store in stores:
        assert usb_drive in [d.node for d in disks_holding(store.path, disks)]
    # Only this drive: other test runs on the machine may have stores on their loop devices.
    assert store_mounts.stores([d for d in disks if d.node == usb_drive]) == stores

    # A capture makes its store writable; the other one stays read-only.
    assert store_mounts.make_writable(stores[1].path)
    ChunkStore.open(stores[1].path).begin_image("written-after-remount")
    assert (stores[1].path / "images" / "written-after-remount.partial").is_dir()
    with pytest.raises(OSError):
        (stores[0].path / "probe").write_bytes(b"x")

    store_mounts.close()
    assert ours(root) == []


def test_a_mount_whose_fuse_daemon_died_does_not_hide_the_other_stores(
        usb_drive: Path, store_mounts: StoreMounts, tmp_path: Path) -> None:
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

        stores = store_mounts.stores(list_disks())
        paths = [s.path for s in stores]
        assert store_mounts.root / f"{usb_drive.name}-1" in paths and dead not in paths
        # Named directly (`--store`), it is explained, not a traceback.
        with pytest.raises(StoreError, match="does not answer"):
            ChunkStore.open(dead)
    finally:
        run(["umount", "-l", str(dead)], check=False)
        losetup.detach(device)


def test_a_file_system_without_a_store_is_offered_for_a_new_one(
        usb_drive: Path, store_mounts: StoreMounts, tmp_path: Path) -> None:
    """Partition 3 (ext4, no store): listed with its size and free space, mounted
    read-write under the mount root when chosen, unmounted after the capture, then found
    by the normal scan like any store (mounted read-only)."""
    drive = drive_of(usb_drive)
    stores = store_mounts.stores([drive])
    places = store_mounts.new_store_places([drive], None, stores)
    assert [p.partition.number for p in places] == [3]  # 1 and 2 hold the listed stores
    place = places[0]
    assert place.free_bytes is not None and 0 < place.free_bytes < place.size <= 24 * MiB
    assert "MB free" in place.describe()
    # The source disk is never offered.
    assert store_mounts.new_store_places([drive], drive, stores) == []

    store = store_mounts.prepare_new_store(place)
    assert store.path == store_mounts.root / f"{usb_drive.name}-3" / NEW_STORE_DIR
    assert 0 < store.free_bytes < 24 * MiB  # the file system's, before the folder exists
    ChunkStore.open(store.path, create=True).begin_image("first-capture")
    assert (store.path / "images" / "first-capture.partial").is_dir()
    store_mounts.after_writing(store.path)
    assert not os.path.ismount(store.path.parent)
    # Now it holds a store: listed as one, no longer as a place for a new one.
    stores = store_mounts.stores(list_disks())
    assert store.path in [s.path for s in stores]
    with pytest.raises(OSError) as refused:
        (store.path / "probe").write_bytes(b"x")
    assert refused.value.errno == errno.EROFS
    assert store_mounts.new_store_places([drive_of(usb_drive)], None, stores) == []


def test_a_drive_without_a_file_system_is_formatted_for_a_new_store(
        tmp_path: Path, live_udev: None) -> None:
    """Offered as blank; formatted through the safety gate (NTFS: this host's kernel has
    no exFAT driver, the live image's has); its new partition is mounted read-write for
    the store and unmounted after the capture."""
    image = tmp_path / "new-drive.img"
    with open(image, "wb") as handle:
        handle.truncate(96 * MiB)
    root = tmp_path / "stores"
    lines: list[str] = []
    with losetup.loop_device(image) as device:
        run(["udevadm", "settle", "--timeout=30"], check=False)
        mounts = StoreMounts(root, log=lines.append, accept=lambda disk: disk.node == device)
        try:
            drive = drive_of(device)
            assert drive in blank_drives([drive], None)
            assert blank_drives([drive], drive) == []  # never the source disk
            store = mounts.format_for_store(drive, "ntfs", None, list_disks)
            assert store.path.parent == root / f"{device.name}-1"
            ChunkStore.open(store.path, create=True).begin_image("first")
            mounts.after_writing(store.path)
            assert not os.path.ismount(store.path.parent)
            assert blank_drives([drive_of(device)], None) == []
        finally:
            mounts.close()
        assert ours(root) == [], lines
    probe = run(["blkid", "-p", "-O", str(MiB), "-o", "export", str(image)], check=False)
    assert b"TYPE=ntfs" in probe.stdout
