"""Capture: read a Windows disk (never writing to it) into the image store.

Plan, show, execute (blivet's plan -> execute):

    plan = plan_capture(CaptureRequest(source, store, roles=..., numbers=...))
    plan = plan.choose({1, 3, 4}, store=..., name=...)   # optional: what the technician ticked
    summary = execute_capture(plan, events, cancel)

plan_capture() looks at the disk once and freezes what will be captured: the disk's
identity (safety.DiskIdentity: stable id, serial, size, image file inode), its partition
table, and each partition with its role, used-block map and an explicit `selected` flag.
execute_capture() runs the gate again (the store must not be on the source disk, the
source must not be the live medium), refuses with DiskChangedError when the node now holds
another disk or the table changed, and then captures exactly the selected partitions of
the plan: no re-planning inside. capture(request) is plan + execute in one call.

Execution order: boot areas and partition table first, then each selected partition's used
blocks cut into chunks on all cores, then the index and, last, the manifest, so an
interrupted capture is never listed as an image, and running the same command again
resumes it (chunks already in the store are not written twice).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from recovery import __version__
from recovery.engine import safety
from recovery.engine.capture_result import CapturedPartition, CaptureSummary
from recovery.engine.chunking import ChunkIO, ChunkSpan, chunk_spans, digest, zero_digest
from recovery.engine.devices import machine_now, resolve_disk
from recovery.engine.diskareas import DiskAreaReader, area_damage, read_boot_areas, rescue_table
from recovery.engine.pipeline import CAPTURE_DEPTH, ordered_map
from recovery.engine.rescue import RescueOptions
from recovery.engine.rescue_capture import RescueJob, RescueOutcome, rescue_partitions
from recovery.engine.roles import classify
from recovery.engine.table import boot_areas, compare_tables, read_table
from recovery.engine.unchanged import SpotCheck, ntfs_fingerprint, spot_check, unchanged_since
from recovery.errors import (
    DeviceIOError,
    DiskChangedError,
    Hint,
    SafetyError,
    StoreError,
    UnsupportedLayoutError,
    UsageError,
)
from recovery.events import ChunkTally, EventSink, Notice, discard, phase
from recovery.fs.probe import VolumeInfo, probe_volume
from recovery.model.disk import Disk
from recovery.model.layout import PartitionTable, Role, TablePartition
from recovery.model.manifest import (
    CaptureStats,
    ImageManifest,
    PartitionImage,
    RawArea,
    SourceIdentity,
)
from recovery.registry.identity import computer_name, image_computer_name
from recovery.registry.volume import WindowsVolume
from recovery.store.images import default_image_name
from recovery.store.imageview import ImageView
from recovery.store.index import ChunkRef, ImageIndex, PartitionIndex
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB, human_size

DEFAULT_CHUNK_SIZE = 4 * MiB


@dataclass(frozen=True)
class CaptureRequest:
    source: Path
    store: Path | None  # None: not chosen yet (plan only; execute needs one)
    name: str | None = None
    # Which partitions: those with one of `roles` or one of the partition `numbers`;
    # both None: every partition.
    roles: frozenset[Role] | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    # By default an NTFS volume whose metadata is unchanged since an earlier image of this
    # disk reuses that image's chunks after a random spot check of them against the disk
    # (recovery.engine.unchanged). read_all reads every used block regardless: for a disk
    # that may have been written past NTFS (a disk editor, failing media).
    read_all: bool = False
    # The spot check's sample; None draws it from os.urandom (tests fix it).
    spot_check_seed: int | None = None
    numbers: frozenset[int] | None = None
    # A failing disk: keep going past unreadable sectors (recovery.engine.rescue), list
    # them in the manifest and name the files they hit.
    rescue: bool = False
    rescue_options: RescueOptions = field(default_factory=RescueOptions)

    def selects(self, number: int, role: Role) -> bool:
        if self.roles is None and self.numbers is None:
            return True
        return role in (self.roles or ()) or number in (self.numbers or ())


@dataclass(frozen=True)
class PlannedPartition:
    partition: TablePartition
    role: Role
    volume: VolumeInfo
    selected: bool

    def to_dict(self) -> dict[str, object]:
        return {"number": self.partition.number, "role": self.role,
                "fs_type": self.volume.fs_type, "label": self.volume.label,
                "start": self.partition.start, "size": self.partition.size,
                "used_bytes": self.volume.used_bytes, "selected": self.selected,
                "warnings": list(self.volume.warnings)}


@dataclass(frozen=True)
class CapturePlan:
    """What execute_capture will do, frozen: read `disk` (which must still match
    `identity`) and capture exactly the partitions marked selected."""

    request: CaptureRequest
    disk: Disk
    identity: safety.DiskIdentity
    table: PartitionTable
    partitions: tuple[PlannedPartition, ...]
    refusals: tuple[SafetyError, ...] = ()  # the gate's, when the plan was made

    @property
    def selected(self) -> list[PlannedPartition]:
        return [p for p in self.partitions if p.selected]

    @property
    def selected_numbers(self) -> list[int]:
        return [p.partition.number for p in self.selected]

    def choose(self, numbers: Iterable[int], store: Path | None = None,
               name: str | None = None) -> CapturePlan:
        """The same plan with exactly the partitions `numbers` selected (and the store and
        image name, when given); the gate is asked again about the store."""
        chosen = frozenset(numbers)
        if not chosen:
            raise _nothing_selected(self.disk)
        _check_numbers(self.disk, self.table, chosen)
        request = replace(self.request, roles=None, numbers=chosen,
                          store=store if store is not None else self.request.store,
                          name=name if name is not None else self.request.name)
        partitions = tuple(replace(p, selected=p.partition.number in chosen)
                           for p in self.partitions)
        refusals = tuple(safety.capture_refusals(self.disk, request.store))
        return replace(self, request=request, partitions=partitions, refusals=refusals)

    @property
    def used_bytes(self) -> int:
        return sum(p.volume.used_bytes for p in self.selected)

    @property
    def warnings(self) -> list[str]:
        return [f"Partition {p.partition.number} ({p.role}): {w}"
                for p in self.selected for w in p.volume.warnings]

    def to_dict(self) -> dict[str, object]:
        return {"source": self.disk.to_dict(), "identity": self.identity.to_dict(),
                "store": str(self.request.store) if self.request.store else None,
                "scheme": self.table.scheme,
                "partitions": [p.to_dict() for p in self.partitions],
                "selected": self.selected_numbers,
                "used_bytes": self.used_bytes, "warnings": self.warnings,
                "refusals": [r.as_dict() for r in self.refusals]}


def plan_capture(request: CaptureRequest) -> CapturePlan:
    disks, udev = machine_now()
    disk = resolve_disk(request.source, disks)
    identity = safety.DiskIdentity.of(disk)
    with BlockDevice.open(disk.node) as device:
        # A failing disk's table comes from whichever copy reads (recovery.engine.diskareas).
        table = rescue_table(DiskAreaReader(device)) if request.rescue else read_table(device)
        _check_numbers(disk, table, request.numbers or frozenset())
        planned = []
        for partition in table.data_partitions():
            volume = probe_volume(device, partition.start, partition.size, request.rescue)
            role = classify(partition, table.scheme, volume)
            planned.append(PlannedPartition(partition, role, volume,
                                            request.selects(partition.number, role)))
    if not any(p.selected for p in planned):
        raise UnsupportedLayoutError(
            f"No partition of {disk.describe()} matches the roles asked for.",
            "Choose partitions this disk has.", hint=Hint.ALL_PARTITIONS)
    refusals = tuple(safety.capture_refusals(disk, request.store, disks, udev))
    return CapturePlan(request, disk, identity, table, tuple(planned), refusals)


def _check_numbers(disk: Disk, table: PartitionTable, numbers: frozenset[int]) -> None:
    present = {p.number for p in table.data_partitions()}
    missing = sorted(numbers - present)
    if missing:
        raise UsageError(
            f"{disk.describe()} has no partition {', '.join(map(str, missing))} (it has "
            f"{', '.join(map(str, sorted(present))) or 'none'}).",
            "Choose partitions by the numbers the disk list shows, or by role.",
            hint=Hint.LIST_DISKS)


def _nothing_selected(disk: Disk) -> UnsupportedLayoutError:
    return UnsupportedLayoutError(f"No partition of {disk.describe()} is selected.",
                                  "Select at least one partition to capture.")


def capture(request: CaptureRequest, events: EventSink = discard,
            cancel: threading.Event | None = None) -> CaptureSummary:
    """Plan and execute in one call (for scripts and tests that confirm nothing)."""
    return execute_capture(plan_capture(request), events, cancel)


def execute_capture(plan: CapturePlan, events: EventSink = discard,
                    cancel: threading.Event | None = None) -> CaptureSummary:
    """Capture exactly what `plan` lists, after the gate and the identity check again."""
    started = time.monotonic()
    request = plan.request
    if request.store is None:
        raise UsageError("No image store was chosen for this capture.",
                         "Choose the store (a directory on another drive) first.")
    if not plan.selected:
        raise _nothing_selected(plan.disk)
    with BlockDevice.open(plan.disk.node) as device:
        # One reader of the disk's own areas for the table and the boot areas: a rescue
        # tries each of their bad sectors once per execute, not once per use.
        areas = DiskAreaReader(device) if request.rescue else None
        _recheck(plan, request.store, device, areas)
        for warning in plan.warnings:
            events(Notice(warning, "warning"))
        store = ChunkStore.open(request.store, create=True)
        # Other jobs may use the store at the same time; none may prune it meanwhile.
        with store.locked("capture"):
            try:
                return _capture_locked(plan, store, device, started, events, cancel, areas)
            except DeviceIOError as exc:
                if not (request.rescue or exc.gone):  # a bad area, not a vanished disk
                    exc.hint = Hint.RESCUE
                raise
            finally:
                _keep_written_chunks(store)


def _keep_written_chunks(store: ChunkStore) -> None:
    """Name the chunk files written so far (the store names them in batches), so that
    running the same command again after a failure or a stop reuses them. Best effort: a
    store that fails here has already failed the capture with a better message."""
    with contextlib.suppress(StoreError, OSError):
        store.sync()


def _capture_locked(plan: CapturePlan, store: ChunkStore, device: BlockDevice,
                    started: float, events: EventSink, cancel: threading.Event | None,
                    areas: DiskAreaReader | None) -> CaptureSummary:
    request = plan.request
    _check_space(store, plan, events)
    identity = source_identity(plan.disk)
    # Repeating an interrupted capture continues it, even when the default name's minute
    # has changed since; a capture another running job writes is never joined.
    writer = store.begin_capture(request.name, identity, lambda taken: default_image_name(
        identity, datetime.now(UTC), taken))
    name = writer.name
    counter = _Counter()
    raw_areas = _capture_boot_areas(device, plan.table, store, counter, areas)
    area_lost = tuple(area_damage(areas, plan.table)) if areas else ()
    for lost in area_lost:
        events(Notice(f"{lost.length} bytes at byte {lost.offset} of the disk could not be "
                      f"read ({lost.what}); stored as zeros. On restore: {lost.restore}.",
                      "warning"))
    parts_index, parts_meta, parts_read = [], [], []
    with phase(events, "capture", f"Capturing {plan.disk.node.name}",
               plan.used_bytes) as tracker:
        tracker.tally = counter.tally
        job = _PartitionJob(device, store, counter, request, identity.stable_id, events,
                            tracker.advance, cancel, _sampler(request))
        rescued = _rescue(job, plan) if request.rescue else None
        for planned in plan.partitions:
            index, meta, read = _capture_partition(job, planned, rescued)
            parts_index.extend(index)
            parts_meta.append(meta)
            parts_read.append(read)
    stats = counter.stats(time.monotonic() - started)
    if rescued is not None:
        found = rescued.stats
        stats = replace(stats, good_read_seconds=round(found.good_read_seconds, 3),
                        bad_read_seconds=round(found.bad_read_seconds, 3),
                        reads_failed=found.reads_failed, reads_retried=found.reads_retried)
    build = partial(
        ImageManifest.build, name=name, created=datetime.now(UTC), tool_version=__version__,
        host=socket.gethostname(), chunk_size=request.chunk_size, source=identity,
        table=plan.table, table_copy=areas.table_copy if areas else "",
        disk_unreadable=area_lost,
        raw_areas=tuple(raw_areas), partitions=tuple(parts_meta), stats=stats)
    # A rescue does not read the dying disk again for the name: every extra read there can
    # be the one that finishes it. It reads the SYSTEM hive from the chunks just stored.
    manifest = build(computer=_image_computer_name(store, build(), parts_index)
                     if request.rescue else _computer_name(request.source, plan))
    writer.commit(manifest, ImageIndex(partitions=tuple(parts_index)))
    partitions = [CapturedPartition(meta, read)
                  for meta, read in zip(parts_meta, parts_read, strict=True)]
    return CaptureSummary(name, str(request.store), partitions, stats, plan.warnings,
                          list(area_lost), manifest.table_copy)


def _image_computer_name(store: ChunkStore, draft: ImageManifest,
                         parts: list[PartitionIndex]) -> str:
    """The computer name from the captured system volume (through the image view, which
    refuses the bytes a rescue could not read); "" when no system volume was captured."""
    chunks = {part.number: part.chunks for part in parts}
    for part in draft.captured_partitions:
        if part.role == "system" and part.number in chunks:
            volume = WindowsVolume(Path(draft.name), 0, part.size, part.number)
            view = partial(ImageView, store, draft.name, draft, part, chunks[part.number])
            return image_computer_name(volume, view)
    return ""


def _computer_name(source: Path, plan: CapturePlan) -> str:
    """The Windows computer name, for finding this PC's images on a shared store."""
    for planned in plan.partitions:
        if planned.role == "system":
            return computer_name(source, planned.partition.start, planned.partition.size)
    return ""


def _recheck(plan: CapturePlan, store: Path, device: BlockDevice,
             areas: DiskAreaReader | None) -> None:
    """The gate again, on the disk as it is now: the node must hold the planned disk with
    the planned partition table, and each selected volume with the used-block map the
    plan will read."""
    disks, udev = machine_now()
    now = resolve_disk(plan.disk.node, disks)
    refusals = (safety.identity_refusals(plan.identity, now)
                + safety.capture_refusals(now, store, disks, udev))
    if refusals:
        raise refusals[0]
    changes = compare_tables(plan.table, rescue_table(areas) if areas else read_table(device))
    if changes:
        raise DiskChangedError(
            f"The partition table of {now.describe()} changed since the capture was planned "
            f"({changes[0]}).", "Nothing was captured: plan the capture again.")
    changed = _used_map_changes(plan, device)
    if changed:
        raise DiskChangedError(
            f"A file system on {now.describe()} was written since the capture was planned "
            f"({changed}); another console or a mount may be using it.",
            "Nothing was captured: make sure nothing has the disk's partitions mounted, then "
            "plan the capture again.")


def _used_map_changes(plan: CapturePlan, device: BlockDevice) -> str:
    """How a selected volume's used-block map now differs from the plan's ("" = none).
    The capture reads the blocks the plan mapped: clusters allocated since would be left
    out and freed ones stored, an image of no moment the volume was ever in."""
    for planned in plan.selected:
        part, then = planned.partition, planned.volume
        if then.probe_error:
            # A plan that could not read this volume's map (a read error) captures all of it:
            # nothing allocated since can be left out, so there is no map to re-check. A
            # probe that reads now is no sign of a write, only of a weak sector that read.
            continue
        now = probe_volume(device, part.start, part.size, plan.request.rescue)
        if now.probe_error:
            raise DiskChangedError(
                f"The used blocks of partition {part.number} could not be read again "
                f"({now.probe_error}), so whether it was written since the plan cannot be "
                "checked; the disk is getting worse.",
                "Nothing was captured: plan the capture again. A plan that cannot read a "
                "volume's used blocks captures all of it.")
        if now.fs_type != then.fs_type:
            return f"partition {part.number} was {then.fs_type}, is now {now.fs_type}"
        if now.used != then.used:
            return (f"partition {part.number}: {human_size(then.used_bytes)} used when "
                    f"planned, {human_size(now.used_bytes)} now"
                    + ("" if now.used_bytes != then.used_bytes else ", in other places"))
    return ""


def source_identity(disk: Disk) -> SourceIdentity:
    return SourceIdentity(stable_id=disk.stable_id, model=disk.model, serial=disk.serial,
                          bus=disk.bus, size=disk.size,
                          logical_sector_size=disk.logical_sector_size, node=str(disk.node))


def _check_space(store: ChunkStore, plan: CapturePlan, events: EventSink) -> None:
    """A first capture may need all of the used data; a repeat mostly reuses chunks."""
    free = store.free_bytes()
    known_source = any(image.source_id == plan.disk.stable_id
                       for image in store.list_images())
    if not known_source:
        store.ensure_space(plan.used_bytes // 2)
        if free < plan.used_bytes:
            events(Notice(f"The store has {human_size(free)} free and the selected partitions "
                          f"hold {human_size(plan.used_bytes)}; it fits only if the data "
                          "compresses well.", "warning"))


class _Counter:
    """Totals updated from worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes_read = self.bytes_stored = 0
        self.chunks_new = self.chunks_reused = self.chunks_zero = 0

    def add(self, read: int, stored: int, new: bool, reused: bool, zero: bool) -> None:
        with self.lock:
            self.bytes_read += read
            self.bytes_stored += stored
            self.chunks_new += new
            self.chunks_reused += reused
            self.chunks_zero += zero

    def tally(self) -> ChunkTally:
        with self.lock:
            return ChunkTally(self.chunks_new, self.chunks_reused, self.chunks_zero)

    def stats(self, seconds: float) -> CaptureStats:
        return CaptureStats(bytes_read=self.bytes_read, bytes_stored=self.bytes_stored,
                            chunks_new=self.chunks_new, chunks_reused=self.chunks_reused,
                            chunks_zero=self.chunks_zero, seconds=round(seconds, 3))


class _PartCounter(_Counter):
    """One partition's share of a capture's totals (a rescue reads them all at once)."""

    def __init__(self, total: _Counter) -> None:
        super().__init__()
        self.total = total

    def add(self, read: int, stored: int, new: bool, reused: bool, zero: bool) -> None:
        super().add(read, stored, new, reused, zero)
        self.total.add(read, stored, new, reused, zero)


def _store_chunk(store: ChunkStore, data: bytes | memoryview, counter: _Counter, used: int,
                 keep_zero: bool = False) -> tuple[bytes, bool]:
    """Hash, and store unless the store has it already; returns (digest, is_zero).

    All-zero chunks are not stored (restore writes zeros) unless `keep_zero`: boot areas
    are restored verbatim from the store, zero or not.
    """
    chunk_digest = digest(data)
    if not keep_zero and chunk_digest == zero_digest(len(data)):
        counter.add(used, 0, False, False, True)
        return chunk_digest, True
    if store.has(chunk_digest):
        counter.add(used, 0, False, True, False)
        return chunk_digest, False
    blob = store.compress(data)
    new = store.put(chunk_digest, blob, batched=True)  # named at the latest by sync()
    counter.add(used, len(blob) if new else 0, new, not new, False)
    return chunk_digest, False


def _capture_boot_areas(device: BlockDevice, table: PartitionTable, store: ChunkStore,
                        counter: _Counter, reader: DiskAreaReader | None) -> list[RawArea]:
    """The boot areas; through `reader` (a rescue) with unreadable sectors as zeros."""
    found = read_boot_areas(reader, table) if reader else [
        (area_name, offset, device.read_at(offset, length))
        for area_name, offset, length in boot_areas(table)]
    areas = []
    for area_name, offset, data in found:
        area_digest, _ = _store_chunk(store, data, counter, len(data), keep_zero=True)
        areas.append(RawArea(name=area_name, offset=offset, size=len(data),
                             digest=area_digest.hex()))
    return areas


@dataclass
class _PartitionJob:
    """What every partition of one capture shares."""

    device: BlockDevice
    store: ChunkStore
    counter: _Counter
    request: CaptureRequest
    source_id: str
    events: EventSink
    advance: Callable[[int], None]
    cancel: threading.Event | None
    sampler: random.Random  # draws the spot check's chunks


def _sampler(request: CaptureRequest) -> random.Random:
    seed = request.spot_check_seed
    return random.Random(os.urandom(32) if seed is None else seed)


def _capture_partition(job: _PartitionJob, planned: PlannedPartition,
                       rescued: _Rescued | None = None
                       ) -> tuple[list[PartitionIndex], PartitionImage, int]:
    """The partition's index entry, manifest entry and the used bytes read for it."""
    part, volume = planned.partition, planned.volume
    refs: list[ChunkRef] = []
    stored_before, read_before = job.counter.bytes_stored, job.counter.bytes_read
    fingerprint = ""
    check: SpotCheck | None = None
    if planned.selected and volume.fs_type == "ntfs" and rescued is None:
        fingerprint = ntfs_fingerprint(job.device, part.start, part.size)
    if rescued is not None and planned.selected:
        refs = rescued.partitions[part.number].refs
    elif planned.selected:
        found = _reuse_unchanged(job, planned, fingerprint)
        check = found[0] if found else None
        refs = found[1] if found and found[0].matched else _read_chunks(job, planned)
    meta = PartitionImage(number=part.number, role=planned.role, fs_type=volume.fs_type,
                          label=volume.label, start=part.start, size=part.size,
                          used_bytes=volume.used_bytes, captured=planned.selected,
                          warnings=tuple(volume.warnings), chunk_count=len(refs),
                          stored_bytes=job.counter.bytes_stored - stored_before,
                          fingerprint=fingerprint,
                          reused_from=check.image if check and check.matched else "",
                          reuse_check=check.describe() if check else "")
    read = job.counter.bytes_read - read_before
    if rescued is not None and planned.selected:
        done = rescued.partitions[part.number]
        meta = replace(meta, unreadable=done.unreadable, damaged=done.damaged,
                       stored_bytes=done.stored_bytes)
        read = done.read_bytes
    if not planned.selected:
        return [], meta, 0
    return [PartitionIndex(part.number, tuple(volume.used), tuple(refs))], meta, read


_Rescued = RescueOutcome


def _rescue(job: _PartitionJob, plan: CapturePlan) -> RescueOutcome:
    """Every selected partition through the rescue passes at once: the important data of
    all volumes is read before the rest of any."""
    request = job.request
    counters = {p.partition.number: _PartCounter(job.counter) for p in plan.selected}

    def store_chunk(number: int, data: bytes | memoryview, used: int) -> tuple[bytes, bool]:
        return _store_chunk(job.store, data, counters[number], used)

    rescue_job = RescueJob(job.device, job.store, request.chunk_size, request.rescue_options,
                           job.source_id, store_chunk, job.advance, job.events, job.cancel)
    outcome = rescue_partitions(rescue_job, [(p.partition, p.volume) for p in plan.selected])
    for number, counter in counters.items():
        outcome.partitions[number] = replace(outcome.partitions[number],
                                             stored_bytes=counter.bytes_stored,
                                             read_bytes=counter.bytes_read)
    unreadable = sum(r.length for p in outcome.partitions.values() for r in p.unreadable)
    if unreadable:
        job.events(Notice(f"{human_size(unreadable)} could not be read and are stored as "
                          "zeros; the image lists where and what they belonged to.",
                          "warning"))
    return outcome


def _read_chunks(job: _PartitionJob, planned: PlannedPartition) -> list[ChunkRef]:
    part = planned.partition

    def work(span: ChunkSpan) -> tuple[ChunkRef, int]:
        data = chunk_io.read_masked(part.start, span)
        chunk_digest, zero = _store_chunk(job.store, data, job.counter, span.used_bytes)
        return ChunkRef(span.number, chunk_digest, zero), span.used_bytes

    refs = []
    spans = chunk_spans(part.size, job.request.chunk_size, planned.volume.used)
    with ChunkIO(job.device) as chunk_io:
        for ref, used in ordered_map(work, spans, workers=CAPTURE_DEPTH, cancel=job.cancel):
            refs.append(ref)
            job.advance(used)
    return refs


def _reuse_unchanged(job: _PartitionJob, planned: PlannedPartition, fingerprint: str
                     ) -> tuple[SpotCheck, list[ChunkRef]] | None:
    """The spot check of the earlier image of this unchanged volume and, when it matched,
    that image's chunks; None when there is no such image."""
    if job.request.read_all:
        return None
    part = planned.partition
    found = unchanged_since(job.store, job.source_id, job.request.chunk_size,
                            part, planned.volume.used, fingerprint)
    if found is None:
        return None
    name, previous = found
    check = spot_check(job.device, part, job.request.chunk_size, name, previous, job.sampler,
                       job.cancel)
    job.counter.add(check.bytes_read, 0, False, False, False)
    if not check.matched:
        first = check.differing[0] * job.request.chunk_size
        job.events(Notice(
            f"Partition {part.number}: {len(check.differing)} of {check.sampled} sampled "
            f"chunks differ from image {name} (the first at {human_size(first)} into the "
            "partition) although its NTFS metadata is the same; something wrote to it past "
            "NTFS (an interrupted restore, a disk editor, failing media). Reading the whole "
            "partition.", "warning"))
        return check, []
    for ref in previous.chunks:
        job.counter.add(0, 0, False, not ref.zero, ref.zero)
    job.advance(planned.volume.used_bytes)
    job.events(Notice(f"Partition {part.number} is unchanged since image {name} (same NTFS "
                      f"metadata; {check.describe()} on the disk): its chunks are reused "
                      "without reading the rest."))
    return check, list(previous.chunks)
