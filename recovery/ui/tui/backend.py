"""The TUI's one door to the engine and the machine.

Screens never import engine modules directly: they call a Backend, so a test or a demo can
point the TUI at a recorded udev database and the power buttons at something harmless,
while capture/restore/verify always run the real engine.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from recovery.engine.disks import disks_holding, list_disks
from recovery.engine.health import Reader, disk_health, with_health
from recovery.engine.safety import capture_refusals
from recovery.engine.storemounts import StoreMounts
from recovery.engine.storescan import (
    NewStorePlace,
    StoreLocation,
    blank_drives,
    find_stores,
    is_store,
)
from recovery.engine.volumes import PartKey, VolumeNotes, VolumeProber
from recovery.errors import RecoveryError, SafetyError
from recovery.events import EventSink
from recovery.model.disk import Disk
from recovery.model.netstore import Credentials, StoreURL
from recovery.store.images import ImageInfo
from recovery.store.objects import ChunkStore
from recovery.sys import systemctl, udev
from recovery.sys.joblock import JobHolder, JobLock
from recovery.sys.network import Link, StaticAddress
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.netstores import RemoteStores

if TYPE_CHECKING:
    # Imported when first used, so the home screen starts even when one engine part fails
    # to import (the technician still gets disks, the shell and the log).
    from recovery.engine import capture as capture_engine
    from recovery.engine import explore as explore_engine
    from recovery.engine import extract as extract_engine
    from recovery.engine import restore as restore_engine
    from recovery.engine import verify as verify_engine
    from recovery.engine.capture_result import CaptureSummary
    from recovery.engine.storedrive import StoreFs
    from recovery.registry import inspect as points_engine
    from recovery.registry import rollback as rollback_engine
    from recovery.registry.diff import HiveDiff
    from recovery.registry.undo import UndoRecord


class Watcher(Protocol):
    def stop(self) -> None: ...


def _power(action: str) -> None:
    systemctl.power(action)


@dataclass
class Backend:
    udev_source: udev.UdevSource | None = None
    live_medium: Path = Path("/run/live/medium")
    opened_stores: list[Path] = field(default_factory=list)
    hotplug: bool = True
    power: Callable[[str], None] = _power  # "reboot" / "poweroff"
    prober: VolumeProber = field(default_factory=VolumeProber)
    # Mounts unmounted partitions to look for stores (None: only mounted ones are searched).
    store_mounts: StoreMounts | None = None
    # One job per machine, across both consoles, the unattended service and the CLI.
    jobs: JobLock = field(default_factory=JobLock)
    # How a disk's SMART health is read; None for a recorded machine, whose device nodes
    # are not this machine's (a test may set one that answers from recorded documents).
    health_reader: Reader | None = None
    # The wired ports ("recovery network"); None for a recorded machine (not this one's).
    network: Callable[[], list[Link]] | None = None
    remote: RemoteStores = field(default_factory=RemoteStores)

    def job_holder(self) -> JobHolder | None:
        """The job running on this PC (from any console), or None."""
        return self.jobs.holder()

    def hold_job(self, what: str, disks: Sequence[Path] = ()
                 ) -> contextlib.AbstractContextManager[JobHolder]:
        """The machine's job lock for one job, entered by the job's worker thread."""
        return self.jobs.hold(what, disks)

    def __post_init__(self) -> None:
        if self.health_reader is None and self.udev_source is None:
            self.health_reader = disk_health
        if self.network is None and self.udev_source is None:
            from recovery.sys.network import wired_links
            self.network = functools.partial(wired_links, quiet=True)  # looked at every 5 s

    def disks(self) -> list[Disk]:
        return list_disks(self.udev_source, live_medium=self.live_medium)

    def with_health(self, disks: list[Disk]) -> list[Disk]:
        """`disks` with their SMART health (in parallel, bounded in time)."""
        if self.health_reader is None:
            return disks
        return with_health(disks, reader=self.health_reader)

    def volume_notes(self, disks: list[Disk]) -> dict[PartKey, VolumeNotes]:
        if self.udev_source is not None:
            return {}  # a recorded machine's device nodes are not this machine's
        return self.prober.notes(disks)

    def watch(self, callback: Callable[[str, str], None]) -> Watcher | None:
        if not self.hotplug or self.udev_source is not None:
            return None  # a recorded machine does not change
        watcher: Watcher = udev.watch_block_devices(callback)
        return watcher

    def disks_holding(self, path: Path, disks: list[Disk]) -> list[Disk]:
        return disks_holding(path, disks, self.udev_source)

    def _mounts(self) -> StoreMounts | None:
        """The engine's store mounts, None where nothing may be mounted (a recorded
        machine's device nodes are not this machine's)."""
        return self.store_mounts if self.udev_source is None else None

    def capture_refusals(self, source: Disk, store: Path, disks: list[Disk]
                         ) -> list[SafetyError]:
        """The engine's reasons not to capture `source` into `store`: the same gate the
        CLI's capture and the engine's execute ask, never a copy of its rules."""
        return capture_refusals(source, store, disks, self.udev_source)

    def stores(self, disks: list[Disk], look_unmounted: bool = True) -> list[StoreLocation]:
        """Stores on mounted partitions, on those mounted earlier to look for stores, and
        (`look_unmounted`) on partitions nobody mounted yet, mounting them to look."""
        mounts = self._mounts()
        if mounts is None:
            return self.remote.named(find_stores(disks, self.opened_stores))
        return self.remote.named(mounts.stores(disks, self.opened_stores, look_unmounted))

    def writable_store(self, path: Path) -> None:
        """The one way to a store the TUI will write to (a capture, a verification record,
        the saved log): remounted read-write if the TUI mounted it read-only to find it."""
        if self.store_mounts is not None:
            self.store_mounts.make_writable(path)

    @contextlib.contextmanager
    def short_write(self, store: Path) -> Iterator[None]:
        """A verification record or a saved log: the store is writable only meanwhile
        and read-only again after, as the home screen's scan holds every store."""
        try:
            yield
        finally:
            if self.store_mounts is not None:
                self.store_mounts.make_read_only(store)

    def new_store_places(self, disks: list[Disk], source: Disk | None,
                         stores: list[StoreLocation]) -> list[NewStorePlace]:
        """Writable file systems (on disks other than `source`) that could hold a new store."""
        mounts = self._mounts()
        return [] if mounts is None else mounts.new_store_places(disks, source, stores)

    def prepare_new_store(self, place: NewStorePlace) -> StoreLocation:
        """Mount `place` read-write (under /run/recovery) for a new store; the capture
        creates the store in its NEW_STORE_DIR folder."""
        assert self.store_mounts is not None  # new_store_places offers none without
        return self.store_mounts.prepare_new_store(place)

    def writable_place(self, place: NewStorePlace) -> Path:
        """The root of `place`'s file system mounted read-write (files copied out of an
        image go there); after_writing() makes it read-only again."""
        assert self.store_mounts is not None  # new_store_places offers none without
        return self.store_mounts.hold_writable(place)

    def blank_drives(self, disks: list[Disk], source: Disk | None) -> list[Disk]:
        """Drives with no file system (new, or wiped) that could be formatted for a store."""
        return [] if self._mounts() is None else blank_drives(disks, source)

    def format_for_store(self, disk: Disk, fs: StoreFs, source: Disk | None
                         ) -> StoreLocation:
        """Format `disk` (one partition, exFAT or NTFS; through the safety gate) and
        prepare a new store on it. The technician has confirmed by typing its serial."""
        assert self.store_mounts is not None  # blank_drives offers none without
        return self.store_mounts.format_for_store(disk, fs, source, self.disks)

    def after_writing(self, store: Path) -> None:
        """After a capture into `store` or a copy onto a drive: a file system this TUI
        mounted read-write for it is unmounted (the home screen's next scan lists a store
        on it again, mounted read-only)."""
        if self.store_mounts is not None:
            self.store_mounts.after_writing(store)

    def save_log(self, log: ActionLog, store: Path) -> Path:
        with self.short_write(store):
            self.writable_store(store)
            return log.save_to_store(store)

    def close(self) -> None:
        if self.store_mounts is not None:
            self.store_mounts.close()
        self.remote.close()

    def links(self) -> list[Link] | None:
        """The wired ports and their addresses; None where this is not the machine's."""
        return self.network() if self.network is not None else None

    def set_static(self, config: StaticAddress) -> None:
        from recovery.sys.network import set_static
        set_static(config)

    def use_dhcp(self, interface: str) -> None:
        from recovery.sys.network import use_dhcp
        use_dhcp(interface)

    def open_url(self, url: StoreURL, credentials: Credentials,
                 ask_host_key: Callable[[str, str], bool] | None, create: bool = False
                 ) -> Path:
        """Mount a network store for the rest of the session and list it (`create`: a new
        store in the URL's folder, which the technician confirmed)."""
        path = self.remote.open(url, credentials, ask_host_key, create)
        if path not in self.opened_stores:
            self.opened_stores.append(path)
        return path

    def open_store(self, path: Path) -> None:
        """Remember a store the technician named; raises StoreError when it is not one."""
        if not is_store(path):
            ChunkStore.open(path)  # raises the store's own explanation
        if path not in self.opened_stores:
            self.opened_stores.append(path)

    def images(self, store: Path) -> list[ImageInfo]:
        return list(ChunkStore.open(store).list_images())

    def plan_capture(self, request: capture_engine.CaptureRequest
                     ) -> capture_engine.CapturePlan:
        from recovery.engine.capture import plan_capture
        return plan_capture(request)

    def execute_capture(self, plan: capture_engine.CapturePlan, events: EventSink,
                        cancel: threading.Event) -> CaptureSummary:
        from recovery.engine.capture import execute_capture
        if plan.request.store is not None:
            self.writable_store(plan.request.store)
        return execute_capture(plan, events, cancel)

    def plan_restore(self, request: restore_engine.RestoreRequest
                     ) -> restore_engine.RestorePlan:
        from recovery.engine.restore import plan_restore
        return plan_restore(request)

    def execute_restore(self, plan: restore_engine.RestorePlan, events: EventSink,
                        cancel: threading.Event) -> restore_engine.RestoreSummary:
        from recovery.engine.restore import execute_restore
        return execute_restore(plan, events, cancel)

    def verify(self, store: Path, image: str, target: Path | None, events: EventSink,
               cancel: threading.Event) -> verify_engine.VerifySummary:
        from recovery.engine.verify import verify
        from recovery.events import Notice
        with self.short_write(store):
            try:  # to record the outcome in the store; checking needs only reading
                self.writable_store(store)
            except RecoveryError as error:
                events(Notice(f"The store stays read-only: {error.title}", "warning"))
            return verify(store, image, target, events, cancel)

    def open_image(self, store: Path, image: str, partition: int | None
                   ) -> explore_engine.OpenedImage:
        """A partition of an image to browse; the caller closes it."""
        from recovery.engine.explore import OpenedImage, browser_for
        from recovery.store.imageview import open_view
        view = open_view(ChunkStore.open(store), image, partition)
        return OpenedImage(view, browser_for(view))

    def extract(self, request: extract_engine.ExtractRequest, events: EventSink,
                cancel: threading.Event) -> extract_engine.ExtractSummary:
        from recovery.engine.extract import extract
        return extract(request, events, cancel)

    def image_points(self, store: Path, image: str, partition: int | None
                     ) -> points_engine.PointsReport:
        from recovery.engine.explore import image_restore_points
        return image_restore_points(store, image, partition)

    # restore points (recovery.registry): the volume is a disk + partition number, or a path
    def restore_points(self, volume: Path, partition: int | None
                       ) -> points_engine.PointsReport:
        from recovery.registry.inspect import restore_points
        return restore_points(volume, partition)

    def show_point(self, volume: Path, point: str, partition: int | None
                   ) -> points_engine.PointReport:
        from recovery.registry.inspect import show_point
        return show_point(volume, point, partition)

    def diff_point(self, volume: Path, point: str, hive: str, key: str | None,
                   partition: int | None) -> HiveDiff:
        from recovery.registry.inspect import diff_point
        return diff_point(volume, point, hive, key, partition)

    def rollback_history(self, volume: Path, partition: int | None) -> list[UndoRecord]:
        from recovery.registry.rollback import history
        return history(volume, partition)

    def rollback(self, request: rollback_engine.RollbackRequest, events: EventSink
                 ) -> rollback_engine.RollbackSummary:
        from recovery.registry.rollback import rollback
        return rollback(request, events)

    def undo(self, request: rollback_engine.UndoRequest, events: EventSink
             ) -> rollback_engine.UndoSummary:
        from recovery.registry.rollback import undo
        return undo(request, events)
