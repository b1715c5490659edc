"""Finding image stores on drives nobody mounted: the live system mounts nothing by itself.

Each unmounted partition with a file system the live system can read is mounted read-only
under /run/recovery/stores/<disk>-<number> and looked at; it stays mounted only when it
holds a store, else it is unmounted at once and not looked at again while it stays plugged
in. Read-only, because any disk may be the one the technician restores to next; a store is
made writable only when a capture (or a verification record) is about to be written to it
(a file system mounted read-write for a new store is unmounted when the capture ends; the
next scan mounts it read-only again, as any store), and the disk holding a store is never
offered as a restore target (disks_holding follows
these mounts to their disk).

Partitions without a device node (loop devices without partx) are reached by offset into
the loop device's backing file, so the mount is still traced back to its disk.

The scan holds the machine's job lock shared (recovery.sys.joblock): while a job runs, on
this console or the other one, it mounts nothing new; the disk being restored shows new
partitions as it is written, and mounting one of them would corrupt it.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from recovery.engine.storedrive import FormatRequest, StoreFs, format_store_drive
from recovery.engine.storescan import (
    NEW_STORE_DIR,
    WRITABLE,
    NewStorePlace,
    StoreLocation,
    find_stores,
    is_store,
    locate,
    new_store_places,
)
from recovery.errors import RecoveryError
from recovery.model.disk import Disk, DiskPartition
from recovery.sys import udev
from recovery.sys.joblock import JobLock
from recovery.sys.mount import mounted_range

MOUNT_ROOT = Path("/run/recovery/stores")
# What the live kernel (and ntfs-3g) can read. A type this kernel lacks (vfat on some build
# hosts) fails to mount and is skipped like a partition holding no store; exFAT on a kernel
# without the driver is mounted through exfat-fuse instead (recovery.sys.mount).
READABLE = WRITABLE
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

Log = Callable[[str], None]


@dataclass
class _Held:
    disk: Disk
    partition: DiskPartition
    mountpoint: Path
    stack: ExitStack
    read_write: bool = False


def _key(disk: Disk, partition: DiskPartition) -> str:
    """Stays the same while the drive stays plugged in; a reformatted partition is new."""
    return f"{disk.stable_id}|{partition.number}|{partition.start}|{partition.fs_uuid}"


@contextmanager
def mount_partition(disk: Disk, partition: DiskPartition, mountpoint: Path, read_write: bool
                    ) -> Iterator[Path]:
    """Mount one partition of `disk` (through its node, or by offset into the loop device's
    backing file); unmounts on exit."""
    if partition.node is not None:
        source, offset, size = partition.node, 0, 0
    elif disk.backing_file is not None:
        source, offset, size = disk.backing_file, partition.start, partition.size
    else:
        source, offset, size = disk.node, partition.start, partition.size
    with mounted_range(source, offset, size, partition.fs_type, mountpoint,
                       read_write=read_write, sector_size=disk.logical_sector_size) as point:
        yield point


Mounter = Callable[[Disk, DiskPartition, Path, bool], AbstractContextManager[Path]]


class StoreMounts:
    """The stores this TUI mounted itself; thread-safe (the home screen scans in a worker)."""

    def __init__(self, root: Path = MOUNT_ROOT, mount: Mounter = mount_partition,
                 log: Log | None = None, accept: Callable[[Disk], bool] | None = None,
                 jobs: JobLock | None = None) -> None:
        self.root = root
        self.mount = mount
        self.log = log or (lambda _line: None)
        # Which disks may be looked at (all on the live system; tests keep to their own).
        self.accept = accept or (lambda _disk: True)
        self.held: dict[str, _Held] = {}
        self.looked_at: set[str] = set()  # partitions that held no store or did not mount
        # (size, free bytes) of every file system mounted to look at: the capture wizard
        # offers each one for a new store.
        self.space: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()
        self.jobs = jobs or JobLock()
        self.waited_for = ""  # the job the last scan left alone, logged once

    def scan(self, disks: Iterable[Disk]) -> list[tuple[Path, Disk]]:
        """Mount what may hold a store; returns (mountpoint, disk) of every store held."""
        disks = list(disks)
        with self.lock, self.jobs.shared() as job:
            present = {_key(d, p) for d in disks for p in d.partitions}
            self._forget_gone(present)
            if job is not None:
                if job.describe() != self.waited_for:
                    self.waited_for = job.describe()
                    self.log(f"stores: mounting nothing to look for stores while a job runs: "
                             f"{job.describe()}")
            else:
                self.waited_for = ""
                for disk, partition in self._candidates(disks):
                    self._look_at(disk, partition)
            return [(held.mountpoint, held.disk) for held in self.held.values()]

    def stores(self, disks: list[Disk], extra: Iterable[Path] = (),
               look_unmounted: bool = True) -> list[StoreLocation]:
        """Stores on mounted partitions of `disks`, on those mounted here earlier, `extra`
        paths the technician named and (`look_unmounted`) on partitions nobody mounted
        yet, mounting them to look."""
        here = self.scan(disks) if look_unmounted else self.mounted()
        return find_stores(disks, extra, here)

    def new_store_places(self, disks: list[Disk], source: Disk | None,
                         stores: list[StoreLocation]) -> list[NewStorePlace]:
        """Writable file systems (on disks other than `source`) that could hold a new store,
        with the free space of those mounted (by anyone) or looked at."""
        def space(disk: Disk, part: DiskPartition) -> tuple[int, int] | None:
            if part.mountpoints:
                try:
                    usage = shutil.disk_usage(part.mountpoints[0])
                except OSError:
                    return None
                return usage.total, usage.free
            return self.free_space(disk, part)
        return new_store_places(disks, source, stores, space, self.mountpoint)

    def hold_writable(self, place: NewStorePlace) -> Path:
        """The root of `place`'s file system, mounted read-write (under the mount root)
        unless someone mounted it already: for a new store, or for files copied out of an
        image. after_writing() makes a mount of ours read-only again."""
        return (place.mountpoint if place.mountpoint is not None
                else self.hold_for_new_store(place.disk, place.partition))

    def prepare_new_store(self, place: NewStorePlace) -> StoreLocation:
        """`place` held writable; the new store is its NEW_STORE_DIR folder, created by the
        capture."""
        return locate(self.hold_writable(place) / NEW_STORE_DIR, place.disk.describe())

    def format_for_store(self, disk: Disk, fs: StoreFs, source: Disk | None,
                         list_disks: Callable[[], list[Disk]]) -> StoreLocation:
        """Format `disk` (one partition, exFAT or NTFS; through the safety gate) and
        prepare a new store on it. The caller has the technician's confirmation."""
        summary = format_store_drive(FormatRequest(
            disk.node, fs, confirmed=True, source=source.node if source else None))
        udev.settle()
        fresh = next((d for d in list_disks() if d.stable_id == disk.stable_id), disk)
        partition = next((p for p in fresh.partitions if p.start == summary.partition_start),
                         None)
        if partition is None:  # the kernel made no node and the table was not re-read
            partition = DiskPartition(1, None, summary.partition_start,
                                      summary.partition_size, fs, summary.label, "", "",
                                      "0x7", "")
        partition = replace(partition, fs_type=fs)
        return self.prepare_new_store(NewStorePlace(fresh, partition,
                                                    summary.partition_size, None, None))

    def mounted(self) -> list[tuple[Path, Disk]]:
        """(mountpoint, disk) of every store held, without looking at anything new."""
        with self.lock:
            return [(held.mountpoint, held.disk) for held in self.held.values()]

    def _candidates(self, disks: list[Disk]) -> Iterator[tuple[Disk, DiskPartition]]:
        for disk in disks:
            # A disk mounted as a whole (or through a loop device over part of it) is in
            # someone's hands already; its mounted stores are found through its mounts.
            # Our own mounts of its other partitions (by offset) do not count.
            theirs = [m for m in disk.mountpoints if not Path(m).is_relative_to(self.root)]
            if disk.holds_live_medium or theirs or not self.accept(disk):
                continue
            for partition in disk.partitions:
                key = _key(disk, partition)
                if (_readable(partition) and not partition.is_mounted
                        and key not in self.held and key not in self.looked_at):
                    yield disk, partition

    def _look_at(self, disk: Disk, partition: DiskPartition) -> None:
        key = _key(disk, partition)
        name = _UNSAFE_NAME.sub("_", f"{disk.node.name}-{partition.number}")
        mountpoint = self.root / name
        where = f"partition {partition.number} ({partition.fs_type}) of {disk.describe()}"
        if os.path.ismount(mountpoint):
            self.log(f"stores: {mountpoint} is already in use; {where} not looked at")
            self.looked_at.add(key)
            return
        stack = ExitStack()
        try:
            stack.enter_context(self.mount(disk, partition, mountpoint, False))
        except RecoveryError as error:
            self.log(f"stores: {where} could not be mounted to look for a store: {error}")
            self.looked_at.add(key)
            return
        try:
            usage = shutil.disk_usage(mountpoint)
            self.space[key] = (usage.total, usage.free)
        except OSError:
            pass
        if is_store(mountpoint) or any(is_store(child) for child in _subdirs(mountpoint)):
            self.held[key] = _Held(disk, partition, mountpoint, stack)
            self.log(f"stores: {where} holds a store; mounted read-only at {mountpoint}")
            return
        self.looked_at.add(key)
        self._close(stack, where)

    def mountpoint(self, disk: Disk, partition: DiskPartition) -> Path | None:
        """Where this TUI holds the partition mounted, if it does."""
        with self.lock:
            held = self.held.get(_key(disk, partition))
            return held.mountpoint if held is not None else None

    def free_space(self, disk: Disk, partition: DiskPartition) -> tuple[int, int] | None:
        """(size, free bytes) of a file system looked at, None when it never mounted."""
        with self.lock:
            return self.space.get(_key(disk, partition))

    def hold_for_new_store(self, disk: Disk, partition: DiskPartition) -> Path:
        """Mount a partition read-write for a new store (the capture creates it there);
        returns the mountpoint. after_writing() unmounts it."""
        key = _key(disk, partition)
        with self.lock:
            held = self.held.get(key)
            if held is not None and held.read_write:
                return held.mountpoint
            if held is not None:
                self._close(self.held.pop(key).stack, str(held.mountpoint))
            mountpoint = self.root / _UNSAFE_NAME.sub("_", f"{disk.node.name}-{partition.number}")
            stack = ExitStack()
            stack.enter_context(self.mount(disk, partition, mountpoint, True))
            self.held[key] = _Held(disk, partition, mountpoint, stack, read_write=True)
            self.looked_at.discard(key)
            self.log(f"stores: partition {partition.number} ({partition.fs_type}) of "
                     f"{disk.describe()} mounted read-write at {mountpoint} for a new store")
            return mountpoint

    def after_writing(self, path: Path) -> None:
        """After a job wrote to a store this TUI mounted: unmount it, so everything is on
        the drive and it can be unplugged. It is forgotten as looked at: the next scan
        finds the store again and holds it read-only like any other."""
        with self.lock:
            key = next((k for k, h in self.held.items()
                        if path == h.mountpoint or path.is_relative_to(h.mountpoint)), None)
            if key is None:
                return
            held = self.held.pop(key)
            self.looked_at.discard(key)
            self.space.pop(key, None)  # the capture used some: measured again when mounted
            self._close(held.stack, str(held.mountpoint))
            self.log(f"stores: {held.mountpoint} unmounted after writing")

    def _forget_gone(self, present: set[str]) -> None:
        self.looked_at &= present
        self.space = {k: v for k, v in self.space.items() if k in present}
        for key in [k for k in self.held if k not in present]:
            held = self.held.pop(key)
            self._close(held.stack, str(held.mountpoint))

    def _close(self, stack: ExitStack, what: str) -> None:
        try:
            stack.close()
        except RecoveryError as error:
            self.log(f"stores: unmounting {what} failed: {error}")

    def make_writable(self, path: Path) -> bool:
        """Remount read-write the store mount holding `path`; False when `path` is not on
        a mount of ours (the technician's own mounts are left as they are). Raises the
        engine's error (e.g. a hibernated NTFS volume) after mounting it read-only again."""
        with self.lock:
            held = next((h for h in self.held.values()
                         if path == h.mountpoint or path.is_relative_to(h.mountpoint)), None)
            if held is None:
                return False
            if held.read_write:
                return True
            held.stack.close()
            try:
                held.stack = self._mounted(held, read_write=True)
                held.read_write = True
            except RecoveryError:
                held.stack = self._mounted(held, read_write=False)
                raise
            self.log(f"stores: {held.mountpoint} mounted read-write")
            return True

    def make_read_only(self, path: Path) -> None:
        """Mount read-only again the store mount holding `path` that make_writable()
        opened for a short write (a verification record, a saved log): the store stays
        listed and open, and a drive pulled out afterwards loses nothing."""
        with self.lock:
            key = next((k for k, h in self.held.items() if h.read_write
                        and (path == h.mountpoint or path.is_relative_to(h.mountpoint))),
                       None)
            if key is None:
                return
            held = self.held[key]
            held.stack.close()
            held.read_write = False
            try:
                held.stack = self._mounted(held, read_write=False)
            except RecoveryError as error:
                # Unmounted is as safe as read-only; the next scan tries again.
                del self.held[key]
                self.looked_at.discard(key)
                self.log(f"stores: {held.mountpoint} unmounted; mounting it read-only "
                         f"again failed: {error}")
                return
            self.log(f"stores: {held.mountpoint} mounted read-only again")

    def _mounted(self, held: _Held, read_write: bool) -> ExitStack:
        stack = ExitStack()
        stack.enter_context(self.mount(held.disk, held.partition, held.mountpoint, read_write))
        return stack

    def close(self) -> None:
        """Unmount every store mounted here (the TUI is leaving)."""
        with self.lock:
            for held in self.held.values():
                self._close(held.stack, str(held.mountpoint))
            self.held.clear()
            self.looked_at.clear()


def _readable(partition: DiskPartition) -> bool:
    """A partition without a node was only sniffed for Windows file systems (no blkid):
    an unknown type there may be ext4 and the kernel is left to recognise it."""
    if partition.node is None and not partition.fs_type:
        return True
    return partition.fs_type in READABLE


def _subdirs(root: Path) -> list[Path]:
    try:
        return [child for child in root.iterdir() if child.is_dir()]
    except OSError:
        return []
