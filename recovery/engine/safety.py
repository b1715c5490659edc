"""The one safety gate every destructive action passes before a single byte is written.

The gate collects every reason to refuse, not just the first, so a shell can show the
technician the whole picture ("mounted AND too small") and grey the disk out.

Three sets of rules, one module:
- `refusals(GateInput)`: may this disk be overwritten with a layout of that size and sector
  size (restore). An image-file target has no sector size of its own: the table is
  written in the image's sector size (through a loop device with that sector size), so
  only block devices must match. A target whose SMART health is failing is refused unless
  the technician insists (`allow_failing_target`).
- `capture_refusals(source, store)`: may this disk be read into that store (the store
  must not live on the disk being read, the source must not be the running live system).
- `DiskIdentity` / `identity_refusals`: is the disk now at a node the one a plan was made
  for (stable id, serial, size, sector size, and for image files and loop devices the
  file's inode). Plans carry an identity; `execute` refuses when it no longer matches.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from recovery.engine.disks import disks_holding, list_disks
from recovery.errors import (
    DiskChangedError,
    FailingTargetError,
    Hint,
    NotConfirmedError,
    SafetyError,
    SectorSizeMismatchError,
    SourceInUseError,
    TargetInUseError,
    TargetReadOnlyError,
    TargetTooSmallError,
)
from recovery.model.disk import Disk
from recovery.sys.udev import UdevSource
from recovery.units import human_size


@dataclass(frozen=True)
class GateInput:
    target: Disk
    required_size: int  # bytes the image's layout needs
    sector_size: int  # logical sector size the image was captured with
    store: Path | None = None  # image store the data comes from
    source: Disk | None = None  # disk being read in the same job, if any
    allow_failing_target: bool = False  # the technician insists (--allow-failing-target)


def refusals(gate: GateInput, disks: list[Disk] | None = None,
             udev: UdevSource | None = None) -> list[SafetyError]:
    """Every reason the target must not be written; empty when it may be (after confirming).
    `disks` and `udev`: the machine as the caller just read it (else read here)."""
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
    if _holds_store(target, gate.store, disks, udev):
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
    found += layout_refusals(target, gate.required_size, gate.sector_size)
    return found + health_refusal(target, gate.allow_failing_target)


def layout_refusals(target: Disk, required_size: int, sector_size: int
                    ) -> list[SafetyError]:
    """Does a partition layout of `required_size` bytes counted in `sector_size`-byte
    sectors fit on `target`. An image file takes the image's sector size."""
    found: list[SafetyError] = []
    name = target.describe()
    if target.size < required_size:
        found.append(TargetTooSmallError(
            f"Target disk is too small: image needs {human_size(required_size)}, "
            f"{name} has {human_size(target.size)}.", "Choose a larger disk."))
    if target.bus != "file" and target.logical_sector_size != sector_size:
        found.append(SectorSizeMismatchError(
            f"{name} has {target.logical_sector_size}-byte sectors, the image was taken from "
            f"a disk with {sector_size}-byte sectors.",
            "Partition offsets are counted in sectors, so the layout would not fit; restore "
            "to a disk with the same sector size."))
    return found


def health_refusal(target: Disk, allow_failing: bool) -> list[SafetyError]:
    """A target whose SMART health is failing would lose the restored system soon, maybe
    during the read-back: refuse, naming the attributes, unless the technician insists.
    `target.health` is read by the caller (recovery.engine.health); unknown passes."""
    health = target.health
    if not health.is_failing or allow_failing:
        return []
    return [FailingTargetError(
        f"{target.describe()} is failing: {'; '.join(health.reasons_of('failing'))}.",
        "Restore onto a healthy disk.", hint=Hint.ALLOW_FAILING_TARGET)]


def capture_refusals(source: Disk, store: Path | None, disks: list[Disk] | None = None,
                     udev: UdevSource | None = None) -> list[SafetyError]:
    """Every reason not to capture `source` into `store` (None: the store is not chosen yet,
    only the source is judged). The CLI's plan and the TUI's store step both ask this; `udev`
    is the machine the shell sees (a recorded one in the TUI's replays)."""
    disks = list_disks(udev) if disks is None else disks
    found: list[SafetyError] = []
    name = source.describe()
    if source.holds_live_medium:
        found.append(SourceInUseError(
            f"{name} holds the running recovery system, not a Windows installation.",
            "Choose the PC's own disk as the source."))
    if _holds_store(source, store, disks, udev):
        found.append(SourceInUseError(
            f"The image store {store} is on {name}, the disk being captured.",
            "Put the store on another drive (a USB disk), then capture again."))
    return found


@dataclass(frozen=True)
class DiskIdentity:
    """What makes a disk the one a plan was made for, beyond its device node (which moves
    when USB disks re-enumerate or loop devices are re-attached)."""

    node: str
    stable_id: str
    serial: str
    size: int
    logical_sector_size: int
    # (st_dev, st_ino) of an image file, or of a loop device's backing file: a path alone
    # survives a file being replaced.
    file_id: tuple[int, int] | None = None

    @classmethod
    def of(cls, disk: Disk) -> DiskIdentity:
        return cls(node=str(disk.node), stable_id=disk.stable_id, serial=disk.serial,
                   size=disk.size, logical_sector_size=disk.logical_sector_size,
                   file_id=_file_id(disk))

    def differences(self, now: Disk) -> list[str]:
        """What differs between this identity and the disk now at its node ([] = same)."""
        other = DiskIdentity.of(now)
        labels = {"stable_id": "stable id", "serial": "serial", "size": "size",
                  "logical_sector_size": "sector size", "file_id": "image file"}
        mine, theirs = asdict(self), asdict(other)
        return [f"{label} was {mine[key]!r}, is now {theirs[key]!r}"
                for key, label in labels.items() if mine[key] != theirs[key]]

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["file_id"] = list(self.file_id) if self.file_id else None
        return data


def identity_refusals(identity: DiskIdentity, now: Disk) -> list[SafetyError]:
    """A refusal when `now` (the disk found at the plan's node just before executing) is
    not the disk the plan was made for."""
    differences = identity.differences(now)
    if not differences:
        return []
    return [DiskChangedError(
        f"{identity.node} is no longer the disk that was planned and confirmed "
        f"({'; '.join(differences)}); it is now {now.describe()}.",
        "A disk was unplugged, re-plugged or swapped since. Nothing was written: check "
        "the disks and start again from the choice of disk.")]


def _file_id(disk: Disk) -> tuple[int, int] | None:
    path = disk.node if disk.bus == "file" else disk.backing_file
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def confirmation_refusal(target: Disk, confirmed: bool) -> list[SafetyError]:
    if confirmed:
        return []
    parts = ", ".join(f"{p.number}: {p.fs_type or 'unknown'} {p.fs_label}".strip()
                      for p in target.partitions) or "no partitions"
    return [NotConfirmedError(
        f"Restoring will overwrite {target.describe()} (partitions {parts}).",
        "Check that this is the right disk.", hint=Hint.CONFIRM)]


def _holds_store(disk: Disk, store: Path | None, disks: list[Disk],
                 udev: UdevSource | None = None) -> bool:
    """Whether the image store lives on `disk` (directly, or inside an image file on it)."""
    return store is not None and any(_same_disk(holder, disk)
                                     for holder in disks_holding(store, disks, udev))


def _same_disk(a: Disk | None, b: Disk) -> bool:
    """Same device, same stable id, or the same image file (a loop device over the file
    that is given as an image file holds the same bytes)."""
    if a is None:
        return False
    return a.node.resolve() == b.node.resolve() or (bool(a.stable_id) and
                                                    a.stable_id == b.stable_id) or (
        a.backing_file is not None and a.backing_file == b.backing_file)


def _mountpoints(disk: Disk) -> list[str]:
    return [*disk.mountpoints, *(m for p in disk.partitions for m in p.mountpoints)]
