"""The one safety gate every destructive action passes before a single byte is written.

The gate collects every reason to refuse, not just the first, so a shell can show the
technician the whole picture ("mounted AND too small") and grey the disk out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recovery.engine.disks import disks_holding, list_disks
from recovery.errors import (
    NotConfirmedError,
    SafetyError,
    SectorSizeMismatchError,
    TargetInUseError,
    TargetReadOnlyError,
    TargetTooSmallError,
)
from recovery.model.disk import Disk
from recovery.units import human_size


@dataclass(frozen=True)
class GateInput:
    target: Disk
    required_size: int  # bytes the image's layout needs
    sector_size: int  # logical sector size the image was captured with
    store: Path | None = None  # image store the data comes from
    source: Disk | None = None  # disk being read in the same job, if any


def refusals(gate: GateInput, disks: list[Disk] | None = None) -> list[SafetyError]:
    """Every reason the target must not be written; empty when it may be (after confirming)."""
    disks = list_disks() if disks is None else disks
    target = gate.target
    found: list[SafetyError] = []
    name = target.describe()
    if target.holds_live_medium:
        found.append(TargetInUseError(
            f"{name} holds the running recovery system.",
            "Choose another disk; the USB stick you booted from cannot be a target."))
    # disks_holding follows loop devices to the disk under their image file, so a store
    # inside an image on the target is caught too.
    if gate.store is not None and any(_same_disk(holder, target)
                                      for holder in disks_holding(gate.store, disks)):
        found.append(TargetInUseError(
            f"{name} holds the image store {gate.store}.",
            "Put the store on another drive, or choose another target disk."))
    if gate.source is not None and _same_disk(gate.source, target):
        found.append(TargetInUseError(f"{name} is the disk being read.",
                                      "Choose a different target disk."))
    if target.is_mounted:
        where = ", ".join(_mountpoints(target))
        found.append(TargetInUseError(f"{name} is in use: mounted at {where}.",
                                      f"Unmount it first (umount {where.split(', ')[0]})."))
    if target.read_only:
        found.append(TargetReadOnlyError(
            f"{name} is read-only.",
            "Remove the write protection (switch, 'blockdev --setrw') or choose another disk."))
    if target.size < gate.required_size:
        found.append(TargetTooSmallError(
            f"Target disk is too small: image needs {human_size(gate.required_size)}, "
            f"{name} has {human_size(target.size)}.", "Choose a larger disk."))
    if target.logical_sector_size != gate.sector_size:
        found.append(SectorSizeMismatchError(
            f"{name} has {target.logical_sector_size}-byte sectors, the image was taken from "
            f"a disk with {gate.sector_size}-byte sectors.",
            "Partition offsets are counted in sectors, so the layout would not fit; restore "
            "to a disk with the same sector size."))
    return found


def confirmation_refusal(target: Disk, confirmed: bool) -> list[SafetyError]:
    if confirmed:
        return []
    parts = ", ".join(f"{p.number}: {p.fs_type or 'unknown'} {p.fs_label}".strip()
                      for p in target.partitions) or "no partitions"
    return [NotConfirmedError(
        f"Restoring will overwrite {target.describe()} (partitions {parts}).",
        "Check that this is the right disk, then run again with --yes.")]


def _same_disk(a: Disk | None, b: Disk) -> bool:
    if a is None:
        return False
    return a.node.resolve() == b.node.resolve() or (bool(a.stable_id) and
                                                    a.stable_id == b.stable_id)


def _mountpoints(disk: Disk) -> list[str]:
    return [*disk.mountpoints, *(m for p in disk.partitions for m in p.mountpoints)]
