"""Restore points on a Windows volume, newest first: Volume Shadow Copies, RegBack, and
XP-style `_restore{GUID}\\RPn` snapshots; each point's hives are exported and checked.

Exports go to a staging directory on the live system (never to the volume), laid out as
`<staging>/<point id>/<HIVE>` plus `<HIVE>.LOG1/.LOG2`, so that regipy can read them and
a rollback can copy exactly what was checked.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from recovery.errors import Hint, RestorePointNotFoundError
from recovery.registry.hives import (
    HIVE_NAMES,
    LOG_SUFFIXES,
    USER_PREFIX,
    HiveCheck,
    check_hive,
)
from recovery.registry.undo import UNDO_DIR, list_records
from recovery.registry.volume import CONFIG_DIR, OpenVolume

Source = Literal["vss", "regback", "xp"]
REGBACK_DIR = CONFIG_DIR + "\\RegBack"
SVI_DIR = "\\System Volume Information"
XP_NAMES = {"SYSTEM": "_REGISTRY_MACHINE_SYSTEM", "SOFTWARE": "_REGISTRY_MACHINE_SOFTWARE",
            "SAM": "_REGISTRY_MACHINE_SAM", "SECURITY": "_REGISTRY_MACHINE_SECURITY",
            "DEFAULT": "_REGISTRY_USER_.DEFAULT"}


@dataclass(frozen=True)
class HiveFiles:
    """Where a point keeps its hives: a file system view (None: the current volume) and
    the path of each hive; `users` is the folder of user profiles when the point has one."""

    opened: OpenVolume
    fs: Any
    path_of: Callable[[str], str | None]
    users: str | None = None

    def read(self, hive: str, suffix: str = "") -> bytes | None:
        path = self.path_of(hive)
        return None if path is None else self.opened.read_file(path + suffix, self.fs)

    def user_hives(self) -> list[str]:
        if self.users is None:
            return []
        return [USER_PREFIX + name for name in self.opened.list_dir(self.users, self.fs)
                if self.opened.read_file(f"{self.users}\\{name}\\NTUSER.DAT", self.fs)
                is not None]


def windows_layout(opened: OpenVolume, fs: Any) -> HiveFiles:
    """A whole Windows volume (the current one or a shadow copy)."""
    def path_of(hive: str) -> str:
        if hive.startswith(USER_PREFIX):
            return f"\\Users\\{hive.removeprefix(USER_PREFIX)}\\NTUSER.DAT"
        return f"{CONFIG_DIR}\\{hive}"
    return HiveFiles(opened, fs, path_of, "\\Users")


def folder_layout(opened: OpenVolume, folder: str, names: dict[str, str] | None = None,
                  with_users: bool = False) -> HiveFiles:
    """Hives as files in one folder of the current volume (RegBack, XP, undo records)."""
    def path_of(hive: str) -> str | None:
        if hive.startswith(USER_PREFIX) and not with_users:
            return None
        return f"{folder}\\{(names or {}).get(hive, hive)}"
    return HiveFiles(opened, None, path_of)


@dataclass
class RestorePoint:
    id: str
    source: Source
    created: datetime
    description: str | None
    hives: dict[str, HiveCheck] = field(default_factory=dict)
    detail: dict[str, object] = field(default_factory=dict)
    files: HiveFiles | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "source": self.source,
                "created": self.created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "description": self.description,
                "hives": {name: check.status for name, check in self.hives.items()},
                "hive_details": {name: check.to_dict() for name, check in self.hives.items()},
                **self.detail}


@dataclass
class PointListing:
    points: list[RestorePoint]
    notes: list[str]

    def find(self, point_id: str) -> RestorePoint:
        for point in self.points:
            if point.id == point_id:
                return point
        known = ", ".join(p.id for p in self.points) or "none"
        raise RestorePointNotFoundError(
            f"There is no restore point '{point_id}' on this volume (it has: {known}).",
            "Use one of the listed ids.", hint=Hint.POINTS_LIST)

    def to_dict(self) -> dict[str, object]:
        return {"points": [p.to_dict() for p in self.points], "notes": self.notes}


def filetime_to_datetime(value: int) -> datetime:
    return datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 10)


def list_points(opened: OpenVolume, staging: Path, user_hives: bool = False) -> PointListing:
    """Every restore point with its hives exported under `staging` and checked; user
    hives (USER_<account>) too when asked, since they are large and many."""
    points: list[RestorePoint] = []
    notes: list[str] = []
    points += _vss_points(opened)
    regback = _regback_point(opened, notes)
    if regback:
        points.append(regback)
    points += _xp_points(opened)
    points = _with_saved_copies(opened, points)
    for point in points:
        assert point.files is not None
        users = tuple(point.files.user_hives()) if user_hives else ()
        export_point(point, staging / point.id, HIVE_NAMES + users)
    points.sort(key=lambda p: p.created, reverse=True)
    return PointListing(points, notes)


def export_point(point: RestorePoint, dest: Path, names: tuple[str, ...] = HIVE_NAMES
                 ) -> dict[str, HiveCheck]:
    """Copy the point's hives (with their logs) into `dest` and check each."""
    assert point.files is not None
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        data = point.files.read(name)
        if data is None:
            continue
        (dest / name).write_bytes(data)
        for suffix in LOG_SUFFIXES:
            log = point.files.read(name, suffix)
            if log is not None:
                (dest / (name + suffix)).write_bytes(log)
        point.hives[name] = check_hive(dest / name, name)
    return point.hives


def _with_saved_copies(opened: OpenVolume, live: list[RestorePoint]) -> list[RestorePoint]:
    """Shadow copies as the oldest undo record saved them.

    Writing to the volume (a rollback) invalidates the shadow copies, so after the first
    rollback their hives are read from the copy that rollback exported before writing;
    points whose shadow copy is gone altogether come back from the record too.
    """
    by_copy = {p.detail.get("shadow_copy_id"): p for p in live if p.source == "vss"}
    taken = {p.id for p in live}
    records_dir = "\\" + UNDO_DIR.replace("/", "\\")
    for record in sorted(list_records(opened), key=lambda r: r.id):
        for meta in record.points:
            copy_id = meta.get("shadow_copy_id")
            if meta.get("source") != "vss" or meta.get("saved_in") or copy_id is None:
                continue
            point = by_copy.get(copy_id)
            if point is not None and "saved_in_undo_record" in point.detail:
                continue  # an older record already holds this shadow copy
            if point is None:
                point_id = str(meta["id"])
                point_id = point_id if point_id not in taken else f"{point_id}-{record.id}"
                created = datetime.fromisoformat(str(meta["created"]).replace("Z", "+00:00"))
                point = RestorePoint(point_id, "vss", created, None,
                                     detail={"shadow_copy_id": copy_id})
                live.append(point)
                by_copy[copy_id] = point
                taken.add(point_id)
            folder = f"{records_dir}\\{record.id}\\shadows\\{meta['id']}"
            point.files = _saved_layout(opened, folder)
            point.detail["saved_in_undo_record"] = record.id
    return live


def _vss_points(opened: OpenVolume) -> list[RestorePoint]:
    if opened.shadows is None:
        return []
    points = []
    for index in range(opened.shadows.number_of_stores):
        store = opened.shadows.get_store(index)
        fs = opened.shadow_fs(index)
        created = store.creation_time.replace(tzinfo=UTC)
        copy_id = str(store.copy_identifier)
        # Windows keeps the text System Restore shows ("Installed X") in SPP metadata
        # whose format is not documented; rather than guess, the description stays None.
        points.append(RestorePoint(
            f"vss-{index + 1}", "vss", created, None,
            detail={"store_number": index + 1, "store_id": str(store.identifier),
                    "shadow_copy_id": copy_id},
            files=windows_layout(opened, fs)))
    return points


def _saved_layout(opened: OpenVolume, folder: str) -> HiveFiles:
    """A point's hives as an undo record saved them: shadows/<id>/<HIVE>[.LOGn]."""
    saved = folder_layout(opened, folder, with_users=True)
    names = [n for n in opened.list_dir(folder)
             if n.startswith(USER_PREFIX) and not n.upper().endswith(LOG_SUFFIXES)]
    return _Listed(saved.opened, saved.fs, saved.path_of, None, tuple(names))


@dataclass(frozen=True)
class _Listed(HiveFiles):
    """HiveFiles whose user hives are a fixed list (files in an undo record)."""

    names: tuple[str, ...] = ()

    def user_hives(self) -> list[str]:
        return list(self.names)


def _regback_point(opened: OpenVolume, notes: list[str]) -> RestorePoint | None:
    names = opened.list_dir(REGBACK_DIR)
    if not names:
        return None
    sizes = {n.upper(): len(opened.read_file(f"{REGBACK_DIR}\\{n}") or b"") for n in names}
    real = [n for n in HIVE_NAMES if sizes.get(n, 0) > 0]
    if not real:
        notes.append("RegBack holds only zero-byte files (Windows 10 1803 and later stop "
                     "backing up the registry there by default), so it is not a restore point.")
        return None
    entry = opened.ntfs.get_file_entry_by_path(f"{REGBACK_DIR}\\{real[0]}")
    created = entry.modification_time.replace(tzinfo=UTC)
    return RestorePoint("regback", "regback", created, None,
                        detail={"folder": "Windows\\System32\\config\\RegBack"},
                        files=folder_layout(opened, REGBACK_DIR))


def _xp_points(opened: OpenVolume) -> list[RestorePoint]:
    points = []
    for folder in opened.list_dir(SVI_DIR):
        if not folder.lower().startswith("_restore{"):
            continue
        for rp in opened.list_dir(f"{SVI_DIR}\\{folder}"):
            if not rp.upper().startswith("RP"):
                continue
            base = f"{SVI_DIR}\\{folder}\\{rp}"
            created, description = _parse_rp_log(opened.read_file(base + "\\rp.log"))
            if created is None:
                continue
            points.append(RestorePoint(
                f"xp-{rp.upper()}", "xp", created, description,
                detail={"folder": base.lstrip("\\")},
                files=folder_layout(opened, base + "\\snapshot", XP_NAMES)))
    return points


def _parse_rp_log(data: bytes | None) -> tuple[datetime | None, str | None]:
    """rp.log: restore point type and sequence, the UTF-16 description from byte 16, and
    the creation time as a FILETIME in the last 8 bytes."""
    if not data or len(data) < 24:
        return None, None
    description = data[16:-8].decode("utf-16-le", errors="replace").split("\0")[0].strip()
    (stamp,) = struct.unpack_from("<Q", data, len(data) - 8)
    return filetime_to_datetime(stamp), description or None
