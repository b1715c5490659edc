"""Fit an image's partition layout to a target disk of another size (pure: no I/O).

The Windows (system) NTFS partition absorbs the difference. Partitions before it (ESP, MSR,
System Reserved) keep start and size, so the boot files and every BCD reference to them stay
valid. Partitions after it (Recovery/WinRE, data) keep their size, order and the gaps between
them and move as one block to the end of the disk: Recovery ends at the end of the disk,
as Windows Setup puts it, and free space left by a chosen `--system-size` lies right after
Windows, where Disk Management can extend C: later. Every start is on a 1 MiB boundary
(what Windows and every SSD expect); identifiers (disk GUID / MBR signature, partition
GUIDs, types, names, attributes) are never changed.

The smallest size Windows may be shrunk to is what `ntfsresize --info` says the volume needs
plus a margin for Windows to boot and update (SYSTEM_MARGIN_* below).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from recovery.errors import Hint, TargetTooSmallError, UnsupportedLayoutError, UsageError
from recovery.model.layout import PartitionTable, TablePartition
from recovery.units import GiB, MiB, align_down, align_up, human_size

LayoutMode = Literal["same", "fit"]
ALIGNMENT = MiB

# Margin over what ntfsresize needs: a fifth of the used space (the free space Microsoft's
# own guidance and Windows Update's "reserved storage" amount to on a typical 30-60 GB
# install: cumulative updates unpack several GB beside the old files), never less than
# 256 MiB (boot logs, a growing pagefile/SoftwareDistribution, chkdsk's work space after the
# resize) and never more than 20 GiB (a very full data volume does not need 20 % more).
SYSTEM_MARGIN_FRACTION = 0.2
SYSTEM_MARGIN_MIN = 256 * MiB
SYSTEM_MARGIN_MAX = 20 * GiB


def system_margin(needed: int) -> int:
    margin = int(needed * SYSTEM_MARGIN_FRACTION)
    return min(max(margin, SYSTEM_MARGIN_MIN), SYSTEM_MARGIN_MAX)


def system_minimum(needed: int) -> int:
    """Smallest partition size for a volume `ntfsresize --info` says needs `needed` bytes."""
    return align_up(needed + system_margin(needed), ALIGNMENT)


@dataclass(frozen=True)
class PartitionChange:
    """One partition, where the image has it and where the fitted layout puts it."""

    number: int
    old_start: int
    old_size: int
    new_start: int
    new_size: int

    @property
    def moved(self) -> bool:
        return self.new_start != self.old_start

    @property
    def resized(self) -> bool:
        return self.new_size != self.old_size

    def action(self) -> str:
        if self.resized:
            return "grown" if self.new_size > self.old_size else "shrunk"
        return "moved" if self.moved else "kept"

    def to_dict(self) -> dict[str, object]:
        return {"number": self.number, "old_start": self.old_start, "old_size": self.old_size,
                "new_start": self.new_start, "new_size": self.new_size, "moved": self.moved,
                "resized": self.resized, "action": self.action()}


@dataclass(frozen=True)
class FittedLayout:
    mode: LayoutMode
    table: PartitionTable  # what will be written: the image's identifiers, new places
    changes: tuple[PartitionChange, ...]
    system: int | None  # number of the partition that is resized (None: nothing is)
    minimum_disk_size: int  # smallest target this image fits on (0: unknown / not fittable)

    @property
    def resized(self) -> PartitionChange | None:
        return next((c for c in self.changes if c.resized), None)

    @property
    def moved(self) -> tuple[PartitionChange, ...]:
        return tuple(c for c in self.changes if c.moved)

    def change(self, number: int) -> PartitionChange:
        return next(c for c in self.changes if c.number == number)

    def change_of(self, number: int) -> PartitionChange | None:
        """The partition's change when it moves or is resized, else None."""
        change = next((c for c in self.changes if c.number == number), None)
        return change if change is not None and (change.moved or change.resized) else None

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "system_partition": self.system,
                "minimum_disk_size": self.minimum_disk_size, "disk_size": self.table.disk_size,
                "partitions": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class FitRequest:
    table: PartitionTable  # the image's table
    target_size: int  # bytes of the target disk
    system: int | None  # number of the NTFS system partition, None when there is none
    system_needed: int = 0  # bytes ntfsresize --info says the system volume needs
    mode: LayoutMode | None = None  # None: "fit" when the sizes differ, else "same"
    system_size: int | None = None  # the technician's choice for the system partition


def fit_layout(request: FitRequest) -> FittedLayout:
    """The layout to write on the target; TargetTooSmallError (with the figure) if none fits."""
    table = request.table
    mode = request.mode or ("fit" if request.target_size != table.disk_size
                            or request.system_size else "same")
    if mode == "same":
        if request.system_size:
            raise UsageError("A size for Windows cannot be combined with keeping the image's "
                             "exact layout.", "Choose one of the two.")
        return _same(request)
    system = _system_partition(request)
    minimum = minimum_disk_size(request)
    tail = _tail(table, system)
    tail_span = (max(p.end for p in tail) - tail[0].start) if tail else 0
    gap = (tail[0].start - system.end) if tail else 0
    disk_end = align_down(_last_usable_end(table, request.target_size), ALIGNMENT)
    tail_start = align_down(disk_end - tail_span, ALIGNMENT) if tail else disk_end
    room = align_down(tail_start - max(gap, 0), ALIGNMENT) - system.start
    size = request.system_size if request.system_size else room
    size = align_down(size, ALIGNMENT) if size != system.size else size
    floor = system_minimum(request.system_needed)
    if request.target_size < minimum or room < floor or size > room:
        raise _too_small(request, minimum, room, floor)
    if size < floor:
        raise UsageError(
            f"A Windows size of {human_size(size)} is below what Windows needs: "
            f"{human_size(floor)} (its used space plus a margin to boot and update).",
            f"Choose at least {human_size(floor)} for Windows.", hint=Hint.SYSTEM_SIZE)
    delta = tail_start - tail[0].start if tail else 0
    moved = {p.number: replace(p, start=p.start + delta) for p in tail}
    new_parts = tuple(moved.get(p.number, replace(p, size=size) if p.number == system.number
                                else p) for p in table.partitions)
    new_table = _with_disk_size(replace(table, partitions=new_parts), request.target_size)
    return FittedLayout("fit", new_table, _changes(table, new_table), system.number, minimum)


def minimum_disk_size(request: FitRequest) -> int:
    """Smallest target that holds the layout with Windows shrunk to its minimum."""
    table = request.table
    system = _system_partition(request)
    tail = _tail(table, system)
    tail_span = (max(p.end for p in tail) - tail[0].start) if tail else 0
    gap = (tail[0].start - system.end) if tail else 0
    end = align_up(system.start + system_minimum(request.system_needed) + max(gap, 0),
                   ALIGNMENT) + align_up(tail_span, ALIGNMENT)
    return end + _backup_area(table)


def _same(request: FitRequest) -> FittedLayout:
    table = request.table
    needed = table.end_of_last_partition
    if request.target_size < needed:
        raise TargetTooSmallError(
            f"Target disk is too small for the image's exact layout: it needs "
            f"{human_size(needed)}, the disk has {human_size(request.target_size)}.",
            "Choose a larger disk, or let Windows be shrunk to fit.", hint=Hint.FIT_LAYOUT)
    minimum = needed
    if request.system is not None and request.system_needed:
        minimum = min(needed, minimum_disk_size(request))
    new_table = replace(table, disk_size=request.target_size) \
        if request.target_size != table.disk_size else table
    return FittedLayout("same", new_table, _changes(table, new_table), None, minimum)


def _system_partition(request: FitRequest) -> TablePartition:
    system = next((p for p in request.table.partitions if p.number == request.system), None)
    if system is None or not request.system_needed:
        raise UnsupportedLayoutError(
            "This image has no NTFS Windows volume that can be resized, so its layout "
            "cannot be fitted to a disk of another size.",
            "Restore its exact layout onto a disk at least as large as the original.",
            hint=Hint.LAYOUT_SAME)
    if system.kind != "primary":
        raise UnsupportedLayoutError(
            f"The Windows volume (partition {system.number}) is a logical partition; "
            "resizing inside an extended partition is not supported.",
            "Restore its exact layout onto a disk at least as large as the original.",
            hint=Hint.LAYOUT_SAME)
    return system


def _tail(table: PartitionTable, system: TablePartition) -> list[TablePartition]:
    """The partitions after Windows, in disk order (those before it never move)."""
    return sorted((p for p in table.partitions if p.start > system.start),
                  key=lambda p: p.start)


def _backup_area(table: PartitionTable) -> int:
    if table.scheme != "gpt":
        return 0
    return (table.entry_count * table.entry_size // table.sector_size + 1) * table.sector_size


def _last_usable_end(table: PartitionTable, disk_size: int) -> int:
    return align_down(disk_size, table.sector_size) - _backup_area(table)


def _with_disk_size(table: PartitionTable, disk_size: int) -> PartitionTable:
    if table.scheme != "gpt":
        return replace(table, disk_size=disk_size)
    last = _last_usable_end(table, disk_size) // table.sector_size - 1
    return replace(table, disk_size=disk_size, last_usable_lba=last)


def _changes(old: PartitionTable, new: PartitionTable) -> tuple[PartitionChange, ...]:
    by_number = {p.number: p for p in new.partitions}
    return tuple(PartitionChange(p.number, p.start, p.size, by_number[p.number].start,
                                 by_number[p.number].size)
                 for p in sorted(old.partitions, key=lambda p: p.start))


def _too_small(request: FitRequest, minimum: int, room: int, floor: int) -> TargetTooSmallError:
    if request.system_size and request.target_size >= minimum:
        return TargetTooSmallError(
            f"A Windows size of {human_size(request.system_size)} does not fit: the disk leaves "
            f"room for {human_size(room)} of Windows.",
            f"Choose at most {human_size(room)} for Windows (it needs at least "
            f"{human_size(floor)}).", hint=Hint.SYSTEM_SIZE)
    return TargetTooSmallError(
        f"Target disk is too small: even with Windows shrunk to {human_size(floor)} (its "
        f"used space plus a margin to boot and update) the image needs "
        f"{human_size(minimum)} ({minimum} bytes), the disk has "
        f"{human_size(request.target_size)}.",
        f"Choose a disk of at least {human_size(minimum)}, or free space in Windows and "
        "capture it again.")
