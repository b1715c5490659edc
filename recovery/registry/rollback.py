"""Roll registry hives back to a restore point, offline, with an undo record.

Plan (reads only): find the volume and the point, export and check every point's hives,
check the volume is safe to write. Execute: mount read-write with ntfs-3g, save the
current hives and logs plus every point's hives into an undo record on the volume, replace
each hive together with the logs of the same point (or with empty logs, so Windows never
replays the current logs over a restored hive), unmount, read everything back through
libfsntfs and compare BLAKE3 hashes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import blake3

from recovery.errors import (
    Hint,
    HiveError,
    NotConfirmedError,
    RecoveryError,
    UndoError,
    VerificationError,
)
from recovery.events import EventSink, Notice, discard, phase
from recovery.registry import undo as records
from recovery.registry.hives import (
    HIVE_NAMES,
    LOG_SUFFIXES,
    USER_PREFIX,
    HiveCheck,
    check_hive,
    file_hash,
    hive_location,
    normal_hive_name,
)
from recovery.registry.points import PointListing, RestorePoint, list_points, windows_layout
from recovery.registry.safety import write_refusals
from recovery.registry.volume import OpenVolume, WindowsVolume, locate_volume, open_volume
from recovery.sys import ntfs3g
from recovery.units import human_size

SLACK_BYTES = 4 * 1024 * 1024  # manifest, folder entries, temporary files


@dataclass(frozen=True)
class RollbackRequest:
    volume: Path
    point: str
    partition: int | None = None
    hives: tuple[str, ...] | None = None  # None: every usable hive the point holds
    confirmed: bool = False
    user_hives: bool = False  # also offer USER_<account> hives (NTUSER.DAT)
    undo_copy: Path | None = None  # also copy the undo record into this folder


@dataclass
class RollbackPlan:
    volume: WindowsVolume
    point: RestorePoint
    hives: list[str]
    current: dict[str, HiveCheck]
    listing: PointListing
    staging: Path
    refusals: list[RecoveryError] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"volume": self.volume.to_dict(), "point": self.point.to_dict(),
                "hives": self.hives,
                "current": {n: c.to_dict() for n, c in self.current.items()},
                "refusals": [r.as_dict() for r in self.refusals]}


@dataclass
class RollbackSummary:
    record: str
    point: str
    replaced: list[str]
    bytes_written: int
    verified: bool
    exported_points: list[str]

    def to_dict(self) -> dict[str, object]:
        return vars(self).copy()


@contextmanager
def staging_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="recovery-points-") as name:
        yield Path(name)


def export_current(opened: OpenVolume, dest: Path, user_hives: bool = False
                   ) -> dict[str, HiveCheck]:
    """The volume's current hives and logs, copied to `dest` and checked."""
    files = windows_layout(opened, None)
    names = HIVE_NAMES + (tuple(files.user_hives()) if user_hives else ())
    dest.mkdir(parents=True, exist_ok=True)
    found = {}
    for name in names:
        for suffix in ("", *LOG_SUFFIXES):
            data = files.read(name, suffix)
            if data is not None:
                (dest / (name + suffix)).write_bytes(data)
        if (dest / name).exists():
            found[name] = check_hive(dest / name, name)
    return found


def plan_rollback(request: RollbackRequest, staging: Path) -> RollbackPlan:
    volume = locate_volume(request.volume, request.partition)
    wanted = tuple(normal_hive_name(h) for h in request.hives) if request.hives else None
    users = request.user_hives or any(h.startswith(USER_PREFIX) for h in wanted or ())
    with open_volume(volume) as opened:
        listing = list_points(opened, staging / "points", users)
        point = listing.find(request.point)
        current = export_current(opened, staging / "current", users)
    refusals = write_refusals(volume)
    hives = _choose_hives(point, wanted, refusals)
    return RollbackPlan(volume, point, hives, current, listing, staging, refusals)


def _choose_hives(point: RestorePoint, wanted: tuple[str, ...] | None,
                  refusals: list[RecoveryError]) -> list[str]:
    names = list(wanted) if wanted else [n for n, c in point.hives.items() if c.usable]
    for name in names:
        check = point.hives.get(name)
        if check is None:
            refusals.append(HiveError(f"Restore point {point.id} has no {name} hive.",
                                      f"Choose from: {', '.join(point.hives) or 'none'}."))
        elif not check.usable:
            refusals.append(HiveError(
                f"The {name} hive of restore point {point.id} is {check.status}: "
                f"{check.problem}.", "Choose an older restore point; this copy cannot be used."))
    if not names:
        found = "; ".join(f"{n} is {c.status}" + (f" ({c.problem})" if c.problem else "")
                          for n, c in point.hives.items())
        refusals.append(HiveError(f"Restore point {point.id} holds no usable hive: "
                                  f"{found or 'it has no hives'}.",
                                  "Choose another restore point."))
    return names


def rollback(request: RollbackRequest, events: EventSink = discard) -> RollbackSummary:
    with staging_dir() as staging:
        # Exporting every point's hives from the shadow copies takes 20 s under QEMU: the
        # progress screen said only "Preparing…" meanwhile.
        with phase(events, "plan", "Reading the hives of every restore point and the "
                   "current ones"):
            plan = plan_rollback(request, staging)
        if plan.refusals:
            raise plan.refusals[0]
        if not request.confirmed:
            raise not_confirmed(plan)
        return execute(plan, events, request.undo_copy)


def not_confirmed(plan: RollbackPlan) -> NotConfirmedError:
    return NotConfirmedError(f"Rolling back {', '.join(plan.hives)} on "
                             f"{plan.volume.describe()} to {plan.point.id} was not confirmed.",
                             "Nothing was written.", hint=Hint.CONFIRM)


@dataclass(frozen=True)
class _Item:
    """One file a rollback replaces: a hive or one of its logs."""

    hive: str
    suffix: str  # "", ".LOG1" or ".LOG2"
    path: str  # on the volume, forward slashes, as Windows spells it
    content: Path | None  # None: an empty log

    @property
    def size(self) -> int:
        return self.content.stat().st_size if self.content else 0


def _files_to_write(plan: RollbackPlan, root: Path) -> list[_Item]:
    """The hive and both logs for every chosen hive; a log the point lacks is written
    empty, so the current one cannot be replayed over the restored hive."""
    source = plan.staging / "points" / plan.point.id
    items = []
    for name in plan.hives:
        folder, file_name = hive_location(name)
        for suffix in ("", *LOG_SUFFIXES):
            content = source / (name + suffix)
            path = existing_spelling(root, f"{folder}/{file_name}{suffix}")
            items.append(_Item(name, suffix, path, content if content.exists() else None))
    return items


def existing_spelling(root: Path, path: str) -> str:
    """`path` with each part spelled as on the volume: ntfs-3g is case-sensitive, Windows
    is not, and a second 'system' next to 'SYSTEM' would confuse Windows."""
    parts, here = [], root
    for part in PurePosixPath(path).parts:
        names = {n.lower(): n for n in os.listdir(here)} if here.is_dir() else {}
        part = names.get(part.lower(), part)
        parts.append(part)
        here = here / part
    return "/".join(parts)


def _export_bytes(plan: RollbackPlan) -> int:
    """Every restore point's hives, as exported for the undo record."""
    return sum(f.stat().st_size for f in (plan.staging / "points").rglob("*") if f.is_file())


def _undo_bytes(plan: RollbackPlan, root: Path, items: list[_Item]) -> int:
    """What _save_undo copies: every export and each file about to be replaced."""
    targets = [root / PurePosixPath(item.path) for item in items]
    return _export_bytes(plan) + sum(t.stat().st_size for t in targets if t.exists())


def _needed_bytes(plan: RollbackPlan) -> int:
    """Every export, the current files, and room for the largest temporary copy."""
    exports = _export_bytes(plan)
    current = sum(f.stat().st_size for f in (plan.staging / "current").glob("*"))
    point = plan.staging / "points" / plan.point.id
    largest_new = max((f.stat().st_size for f in point.iterdir()), default=0)
    return exports + current + largest_new + SLACK_BYTES


def execute(plan: RollbackPlan, events: EventSink = discard,
            undo_copy: Path | None = None) -> RollbackSummary:
    record = records.UndoRecord(records.new_record_id(), records.now_iso(), "prepared",
                                {"id": plan.point.id, "source": plan.point.source,
                                 "created": plan.point.to_dict()["created"]}, [])
    with _mounted(plan.volume) as root:
        needed, free = _needed_bytes(plan), _free_bytes(root)
        if free < needed:
            raise UndoError(
                f"Not enough free space on {plan.volume.describe()} for the undo record: "
                f"it needs {human_size(needed)}, the volume has {human_size(free)} free.",
                "Free space on the volume (e.g. delete files in the Windows\\Temp folder from "
                "another PC) and try again. Nothing was replaced.")
        items = _files_to_write(plan, root)
        for name in plan.hives:
            if plan.point.hives[name].status == "dirty":
                events(Notice(f"The {name} hive of {plan.point.id} was not cleanly written "
                              "and has no logs; Windows will load it as it is.", "warning"))
        with phase(events, "undo-record", "Saving current hives and every restore point",
                   _undo_bytes(plan, root, items)) as saving:
            _save_undo(root, record, plan, items, saving.advance)
        if undo_copy is not None:
            shutil.copytree(records.record_dir(root, record.id), undo_copy / record.id)
        with phase(events, "rollback", f"Writing {plan.point.id} hives",
                   sum(item.size for item in items)) as tracker:
            for item in items:
                records.atomic_write(root / PurePosixPath(item.path), item.content,
                                     tracker.advance)
        record.state = "applied"
        records.save_manifest(root, record)
    with phase(events, "check", "Reading the written hives back from the volume"):
        verify_written(plan.volume, record)
    events(Notice(f"Undo record {record.id} saved on the volume."))
    return RollbackSummary(record.id, plan.point.id, [item.path for item in items],
                           sum(item.size for item in items), True,
                           [p.id for p in plan.listing.points])


def _save_undo(root: Path, record: records.UndoRecord, plan: RollbackPlan,
               items: list[_Item], advance: records.Advance) -> None:
    for point in plan.listing.points:
        record.points.append({key: point.to_dict()[key] for key in (
            "id", "source", "created", "description")} | {
            "shadow_copy_id": point.detail.get("shadow_copy_id"),
            "saved_in": point.detail.get("saved_in_undo_record")})
    for point_dir in sorted((plan.staging / "points").iterdir()):
        for exported in sorted(point_dir.iterdir()):
            name = f"shadows/{point_dir.name}/{exported.name}"
            record.exports[name] = records.save_file(root, record, exported, name, advance)
    for item in items:
        target = root / PurePosixPath(item.path)
        saved = digest = None
        size = 0
        if target.exists():
            saved = f"current/{item.hive}{item.suffix}"
            digest = records.save_file(root, record, target, saved, advance)
            size = target.stat().st_size
        written = file_hash(item.content) if item.content else _EMPTY_HASH
        record.files.append(records.ReplacedFile(item.path, saved, digest, size, written))
    records.save_manifest(root, record)


_EMPTY_HASH = blake3.blake3(b"").hexdigest()


def _free_bytes(root: Path) -> int:
    info = os.statvfs(root)
    return info.f_bavail * info.f_frsize


@contextmanager
def _mounted(volume: WindowsVolume) -> Iterator[Path]:
    mountpoint = Path(tempfile.mkdtemp(prefix="recovery-rw-"))
    try:
        # noatime: looking at a folder must not write to a volume we may still refuse.
        with ntfs3g.mount(volume.source, volume.offset, mountpoint, True,
                          size=volume.size, options=("noatime",)) as root:
            yield root
    finally:
        shutil.rmtree(mountpoint, ignore_errors=True)


def verify_written(volume: WindowsVolume, record: records.UndoRecord,
                   expect_saved: bool = False) -> None:
    """Read every replaced file back through libfsntfs (not the mount that wrote it)."""
    problems = []
    with open_volume(volume) as opened:
        for item in record.files:
            data = opened.read_file("\\" + item.path.replace("/", "\\"))
            want = item.blake3 if expect_saved else item.written_blake3
            got = None if data is None else blake3.blake3(data).hexdigest()
            if got != want:
                problems.append(f"{item.path}: expected {want}, read back {got}")
    if problems:
        raise VerificationError(
            f"{len(problems)} file(s) on {volume.describe()} do not read back as written.",
            f"Undo the rollback (record {record.id}), then check the disk for errors.", problems,
            hint=Hint.POINTS_UNDO)


@dataclass(frozen=True)
class UndoRequest:
    volume: Path
    record: str | None = None  # None: the newest applied rollback
    partition: int | None = None
    confirmed: bool = False


@dataclass
class UndoSummary:
    record: str
    point: str
    restored: list[str]
    verified: bool

    def to_dict(self) -> dict[str, object]:
        return vars(self).copy()


def history(volume_path: Path, partition: int | None = None) -> list[records.UndoRecord]:
    with open_volume(locate_volume(volume_path, partition)) as opened:
        return records.list_records(opened)


def undo(request: UndoRequest, events: EventSink = discard) -> UndoSummary:
    """Put back exactly what a rollback replaced (hash-checked) and mark its record used."""
    volume = locate_volume(request.volume, request.partition)
    with open_volume(volume) as opened:
        record = records.choose_record(records.list_records(opened), request.record)
    refusals = write_refusals(volume)
    if refusals:
        raise refusals[0]
    if not request.confirmed:
        raise NotConfirmedError(f"Undoing rollback {record.id} on {volume.describe()} was not "
                                "confirmed.", "Nothing was written.", hint=Hint.CONFIRM)
    saved = sum(item.size for item in record.files if item.saved is not None)
    with _mounted(volume) as root, phase(events, "undo", "Putting back the files the "
                                         "rollback replaced", saved) as tracker:
        restored = records.restore_record(root, record, tracker.advance)
    with phase(events, "check", "Reading the files put back from the volume"):
        verify_written(volume, record, expect_saved=True)
    return UndoSummary(record.id, str(record.point.get("id")), restored, True)
