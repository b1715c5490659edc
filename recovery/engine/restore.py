"""Restore: put an image back on a disk, identifiers and all, and prove it by reading back.

Plan, show, execute:

    plan = plan_restore(RestoreRequest(store, image, target))   # shows plan.refusals
    plan = plan.confirm(delta=...)        # after the technician confirmed this very disk
    summary = execute_restore(plan, events, cancel)

The plan is frozen: the target's identity (safety.DiskIdentity: stable id, serial, size,
image file inode), the image's manifest and index, and the explicit partition numbers to
write. execute_restore() runs the gate again on the disk now at the plan's node, refuses
(DiskChangedError) when that is not the planned disk any more, and writes exactly the
plan's partitions; restore(request) is plan + execute in one call.

The target is opened exclusively (O_EXCL) for the whole restore, and the identity is
checked once more while it is held, so nothing can mount it or take its node in between;
the kernel is asked to re-read the partition table on that descriptor at the very end.

Order: safety gate (nothing is touched before it passes), partition table with the same
identifiers, boot code and post-MBR gap, then every captured partition's used ranges at
their offsets (unused ranges left alone), flush, and read every written range back from
the medium to compare its BLAKE3 with the image. With `delta`, chunks the target already
holds are not written: that is also how an interrupted restore resumes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from recovery.engine import safety
from recovery.engine.bootconfig import update_boot_config
from recovery.engine.chunking import ChunkIO, digest, zeros
from recovery.engine.devices import machine_now, resolve_disk
from recovery.engine.fit import FittedLayout
from recovery.engine.health import with_health
from recovery.engine.pipeline import ordered_map
from recovery.engine.placed import PlacedChunk, all_placed
from recovery.engine.readback import WaveReadBack
from recovery.engine.resize import (
    LayoutChoice,
    as_written,
    is_clipped,
    place,
    plan_layout,
    resize_system,
)
from recovery.engine.table import compare_tables, load_table_tools, read_table, write_table
from recovery.engine.verify import check_boot_areas
from recovery.errors import (
    CancelledError,
    DeviceIOError,
    FailingTargetError,
    Hint,
    ImageDamagedError,
    NotConfirmedError,
    SafetyError,
    TargetTooSmallError,
    UsageError,
    VerificationError,
)
from recovery.events import EventSink, Notice, discard, phase
from recovery.model.disk import Disk
from recovery.model.layout import PartitionTable
from recovery.model.manifest import ImageManifest, PartitionImage, RawArea
from recovery.store.index import ImageIndex
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.sys.udev import UdevSource


@dataclass(frozen=True)
class RestoreRequest:
    store: Path
    image: str
    target: Path
    delta: bool = False
    confirmed: bool = False  # the technician said yes (TUI dialog or --yes)
    verify: bool = True
    layout: LayoutChoice = field(default_factory=LayoutChoice)
    allow_failing_target: bool = False  # restore even onto a disk whose SMART says failing


@dataclass(frozen=True)
class RestorePlan:
    """What execute_restore will do, frozen: write `manifest`'s table and boot areas and
    the image partitions numbered `partitions` to `target`, which must still match
    `identity`."""

    request: RestoreRequest
    target: Disk
    identity: safety.DiskIdentity
    manifest: ImageManifest
    index: ImageIndex = field(repr=False)
    partitions: tuple[int, ...]  # image partition numbers whose data is written
    refusals: list[SafetyError]
    layout: FittedLayout | None = None  # the image fitted to the target; None: none fits

    @property
    def table(self) -> PartitionTable:
        """The table the restore writes: the image's, fitted to the target."""
        return self.layout.table if self.layout else self.manifest.table

    def bcd_update(self) -> str:
        """Whether the restore rewrites the BCD, and why (the plan shows it)."""
        moved = self.layout.moved if self.layout else ()
        if not moved:
            return "unchanged (no partition moves)"
        if self.manifest.table.scheme == "gpt":
            return "unchanged (GPT: Windows finds partitions by their GUIDs, which are kept)"
        numbers = ", ".join(str(c.number) for c in moved)
        return (f"updated (MBR: partition {numbers} moves; BCD entries and ReAgent.xml that "
                "name it by offset get the new one)")

    def confirm(self, delta: bool | None = None, allow_failing: bool = False) -> RestorePlan:
        """This plan, confirmed by the technician for this very disk (and `delta` set;
        `allow_failing`: the technician insists on a target whose SMART says failing)."""
        request = replace(self.request, confirmed=True,
                          delta=self.request.delta if delta is None else delta,
                          allow_failing_target=allow_failing or
                          self.request.allow_failing_target)
        waived = (NotConfirmedError, FailingTargetError) if allow_failing else NotConfirmedError
        refusals = [r for r in self.refusals if not isinstance(r, waived)]
        return replace(self, request=request, refusals=refusals)

    @property
    def written_partitions(self) -> list[PartitionImage]:
        return [p for p in self.manifest.captured_partitions if p.number in self.partitions]

    def to_dict(self) -> dict[str, object]:
        return {"image": self.manifest.name, "target": self.target.to_dict(),
                "identity": self.identity.to_dict(), "partitions": list(self.partitions),
                "delta": self.request.delta,
                "layout": self.layout.to_dict() if self.layout else None,
                "bcd": self.bcd_update(),
                "will_overwrite": [p.to_dict() for p in self.target.partitions],
                "image_partitions": [
                    {"number": p.number, "role": p.role, "fs_type": p.fs_type,
                     "label": p.label, "size": p.size, "used_bytes": p.used_bytes,
                     "captured": p.captured} for p in self.manifest.partitions],
                "refusals": [r.as_dict() for r in self.refusals]}


@dataclass
class RestoreSummary:
    image: str
    target: str
    delta: bool
    bytes_written: int = 0
    chunks_written: int = 0
    chunks_skipped: int = 0
    verified: bool = False
    seconds: float = 0.0
    unreadable_bytes: int = 0  # zeros written where the source could not be read

    def to_dict(self) -> dict[str, object]:
        return {"image": self.image, "target": self.target, "delta": self.delta,
                "bytes_written": self.bytes_written, "chunks_written": self.chunks_written,
                "chunks_skipped": self.chunks_skipped, "verified": self.verified,
                "unreadable_bytes": self.unreadable_bytes,
                "seconds": round(self.seconds, 3)}


def plan_restore(request: RestoreRequest) -> RestorePlan:
    store = ChunkStore.open(request.store)
    manifest, index = store.load_image(request.image)
    disks, udev = machine_now()
    target = _target_now(request.target, disks)
    numbers = tuple(p.number for p in manifest.captured_partitions)
    layout, too_small = plan_layout(request.store, manifest, target.size, request.layout)
    plan = RestorePlan(request, target, safety.DiskIdentity.of(target), manifest, index,
                       numbers, [], layout)
    # No fitted layout: the fitter's refusal names the smallest disk that fits; the gate's
    # own "too small" (against the image's layout) would only repeat it less precisely.
    refusals = too_small + [r for r in _gate(plan, target, disks, udev)
                            if not (too_small and isinstance(r, TargetTooSmallError))]
    return replace(plan, refusals=refusals)


def _target_now(node: Path, disks: list[Disk]) -> Disk:
    """The disk at `node` with its SMART health read now (the gate refuses a failing one)."""
    return with_health([resolve_disk(node, disks)])[0]


def _gate(plan: RestorePlan, target: Disk, disks: list[Disk], udev: UdevSource
          ) -> list[SafetyError]:
    request, table = plan.request, plan.table
    gate = safety.GateInput(target=target, required_size=table.end_of_last_partition,
                            sector_size=table.sector_size, store=request.store,
                            allow_failing_target=request.allow_failing_target)
    return (safety.identity_refusals(plan.identity, target) + safety.refusals(gate, disks, udev)
            + safety.confirmation_refusal(target, request.confirmed))


def restore(request: RestoreRequest, events: EventSink = discard,
            cancel: threading.Event | None = None) -> RestoreSummary:
    """Plan and execute in one call (the caller confirmed with `request.confirmed`)."""
    return execute_restore(plan_restore(request), events, cancel)


def execute_restore(plan: RestorePlan, events: EventSink = discard,
                    cancel: threading.Event | None = None) -> RestoreSummary:
    """Write exactly what `plan` lists, after the gate and the identity check again."""
    started = time.monotonic()
    _recheck(plan)
    request, manifest = plan.request, plan.manifest
    if request.delta and plan.layout is not None and plan.layout.resized is not None:
        raise UsageError("A delta restore cannot be used when Windows is resized to fit the "
                         "target: a resized volume no longer matches the image chunk for chunk.",
                         "Restore everything (an interrupted resized restore starts over).",
                         hint=Hint.NO_DELTA)
    store = ChunkStore.open(request.store)
    summary = RestoreSummary(manifest.name, plan.target.describe(), request.delta,
                             unreadable_bytes=manifest.unreadable_bytes)
    if manifest.unreadable_bytes:
        events(Notice(unreadable_warning(manifest), "warning"))
    try:
        # Shared with other jobs; keeps a prune from removing chunks this image needs.
        with store.locked("restore", image=manifest.name, read_only_ok=True):
            _check_chunks_present(store, plan)
            _run_restore(plan, store, summary, events, cancel)
    except (DeviceIOError, CancelledError) as exc:
        # The engine's generic advice says "run it again"; a restore resumes only with
        # --delta, which skips the chunks the target already holds.
        raise type(exc)(exc.title, RESUME_ADVICE, hint=Hint.RESUME_DELTA) from exc
    summary.seconds = time.monotonic() - started
    return summary


def _recheck(plan: RestorePlan) -> None:
    """The whole gate again, on the disk that is at the plan's node now."""
    disks, udev = machine_now()  # the machine as it is now, read once
    refusals = _gate(plan, _target_now(plan.target.node, disks), disks, udev)
    if plan.layout is None:  # nothing fits: the fitter's refusal names the smallest disk
        refusals = [r for r in plan.refusals if isinstance(r, TargetTooSmallError)] + refusals
    if refusals:
        raise refusals[0]


def unreadable_warning(manifest: ImageManifest) -> str:
    """What a restore of a rescue image leaves out, in a technician's words."""
    hit = [item.path for part in manifest.partitions for item in part.damaged
           if item.kind != "free-space" and item.path]
    files = f" Damaged: {', '.join(hit[:5])}{' and more' if len(hit) > 5 else ''}." \
        if hit else ""
    areas = "".join(f" Unreadable {item.what}: {item.restore}." for item in
                    manifest.disk_unreadable)
    return (f"Image {manifest.name} was captured from a failing disk: {manifest.unreadable_bytes}"
            f" bytes could not be read and are restored as zeros.{files}{areas} Run chkdsk /f "
            "in Windows after restoring; the image's details list every damaged file.")


RESUME_ADVICE = ("The target is only partly restored. Check its cable and health; restoring "
                 "the same image again, writing only the chunks that differ, writes only "
                 "what is still missing "
                 "and verifies everything.")


def _run_restore(plan: RestorePlan, store: ChunkStore, summary: RestoreSummary,
                 events: EventSink, cancel: threading.Event | None) -> None:
    request, manifest, node = plan.request, plan.manifest, plan.target.node
    load_table_tools(plan.table)
    # sgdisk syncs the whole system and sleeps a second before it exits; the table's sectors
    # and the partitions never overlap, so the partitions are written meanwhile. The boot
    # areas wait for the table: sector 0 holds both the boot code and the (protective) MBR.
    with ThreadPoolExecutor(1, thread_name_prefix="table") as table_writer, \
            BlockDevice.open(node, writable=True,
                             sector_size=manifest.table.sector_size) as device:
        _recheck(plan)  # the node could have changed hands before we held it
        table_written = table_writer.submit(write_table, device, plan.table)
        # Read while the partitions are written: after the last write nothing overlaps.
        boot_areas = table_writer.submit(_read_boot_areas, store, manifest)
        planned = sum(p.used_bytes for p in plan.written_partitions)
        with WaveReadBack(device, request.verify, planned, cancel) as read_back:
            _write_partitions(device, plan, store, request.delta, summary, events, cancel,
                              read_back.add)
            table_written.result()
            _write_boot_areas(device, boot_areas.result())
            device.flush()
            if request.verify:
                _read_back(device, plan, read_back, events)
                summary.verified = True
        # Only the exclusive holder may have the kernel re-read the table (sgdisk's own
        # request failed while we held it), and only once nothing more is written to it.
        device.reread_partitions()
    # Resizing opens the disk itself (ntfsresize, mounts): after our exclusive hold ends.
    if plan.layout is not None:
        resize_system(node, request.store, manifest, plan.layout, events)
        update_boot_config(node, manifest, plan.layout, events)


def _check_chunks_present(store: ChunkStore, plan: RestorePlan) -> None:
    """Refuse a damaged image before the target is touched, not halfway through."""
    needed = {bytes.fromhex(area.digest) for area in plan.manifest.raw_areas}
    needed |= plan.index.stored_digests()
    missing = [d.hex() for d in needed if not store.has(d)]
    if missing:
        raise ImageDamagedError(
            f"Image {plan.manifest.name} is missing {len(missing)} chunk(s) in the store "
            f"(first: {missing[0]}); nothing was written to the target.",
            "Verify the image to see the damage; restore another image or capture the disk "
            "again.", hint=Hint.VERIFY_IMAGE)


def _read_boot_areas(store: ChunkStore, manifest: ImageManifest) -> list[tuple[RawArea, bytes]]:
    return [(area, store.read_area(area)) for area in manifest.raw_areas]


def _write_boot_areas(device: BlockDevice, areas: list[tuple[RawArea, bytes]]) -> None:
    for area, data in areas:
        device.write_at(area.offset, data)


def _write_partitions(device: BlockDevice, plan: RestorePlan, store: ChunkStore, delta: bool,
                      summary: RestoreSummary, events: EventSink,
                      cancel: threading.Event | None,
                      on_written: Callable[[PlacedChunk], None]) -> None:
    """Write each chunk's used ranges; `on_written` hears of each chunk written."""
    layout = plan.layout

    def work(chunk: PlacedChunk) -> tuple[PlacedChunk, int]:
        offset, span = chunk.partition_offset, chunk.span
        if delta and digest(chunk.read_from(chunk_io)) == chunk.ref.digest:
            return chunk, 0
        content = chunk_io.frame(offset, span)
        if chunk.ref.zero:
            content[:] = zeros(span.length)
        else:
            store.get_into(chunk.ref.digest, content)
        written = chunk_io.write_used(offset, span, content)
        if layout is not None and is_clipped(chunk, layout):
            chunk = as_written(chunk, content)  # read back against what it now holds
        return chunk, written

    total = sum(p.used_bytes for p in plan.written_partitions)
    with phase(events, "restore", f"Restoring to {plan.target.node.name}",
               total) as tracker:
        chunks: Iterator[PlacedChunk] = (chunk for chunk in all_placed(plan.manifest, plan.index)
                                         if chunk.partition in plan.partitions)
        if layout is not None:
            chunks = place(chunks, layout)
        with ChunkIO(device) as chunk_io:
            for chunk, nbytes in ordered_map(work, chunks, cancel=cancel):
                tracker.advance(chunk.span.used_bytes)
                if nbytes:
                    on_written(chunk)
                    summary.bytes_written += nbytes
                    summary.chunks_written += 1
                else:
                    summary.chunks_skipped += 1
    if delta:
        events(Notice(f"Delta restore: {summary.chunks_skipped} chunks were already right, "
                      f"{summary.chunks_written} written."))


def _read_back(device: BlockDevice, plan: RestorePlan, read_back: WaveReadBack,
               events: EventSink) -> None:
    problems = compare_tables(plan.table, read_table(device))
    problems += check_boot_areas(device, plan.manifest)
    problems += read_back.finish(events)
    if problems:
        raise VerificationError(
            f"Read-back verification of {device.path} found {len(problems)} problem(s); "
            f"first: {problems[0]}.",
            "The disk did not keep what was written: it may be failing. Run the restore "
            "again, or use another disk.", problems)
