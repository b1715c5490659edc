"""Undo records: what a rollback replaced, kept on the volume itself under
`System Volume Information\\recovery-undo\\<id>\\` with a YAML manifest and the BLAKE3 of
every file, so `undo` can put back exactly what was there, hash-checked.

Layout of a record: `manifest.yaml`, `current/` (the hives and logs that were replaced),
`shadows/<point id>/` (every restore point's hives, exported before the first write,
because writing to the volume may invalidate the remaining shadow copies).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from recovery.errors import Hint, UndoError
from recovery.registry.hives import file_hash
from recovery.registry.volume import OpenVolume

UNDO_DIR = "System Volume Information/recovery-undo"
MANIFEST = "manifest.yaml"
FORMAT = 1
BLOCK = 1 << 20
# Told the bytes of each block written: a hive is 10-100 MB and goes through ntfs-3g, which
# takes half a minute for one on a slow PC; counted per file, the bar sat at 0 % meanwhile.
Advance = Callable[[int], None]


def _ignore(_nbytes: int) -> None:
    """An Advance for writes nobody watches."""


@dataclass
class ReplacedFile:
    path: str  # on the volume, forward slashes, from the root
    saved: str | None  # inside the record; None when the file did not exist before
    blake3: str | None  # of the saved copy
    size: int
    written_blake3: str = ""  # what the rollback wrote there


@dataclass
class UndoRecord:
    id: str
    created: str
    state: str  # "prepared" (nothing replaced yet), "applied", "used"
    point: dict[str, object]
    files: list[ReplacedFile]
    exports: dict[str, str] = field(default_factory=dict)  # path in record -> blake3
    used: str | None = None
    # The restore points whose hives are under shadows/<id>/: id, source, created,
    # description, shadow_copy_id, as listed before the first write.
    points: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"format": FORMAT, "id": self.id, "created": self.created, "state": self.state,
                "point": self.point, "used": self.used,
                "files": [vars(f) for f in self.files], "exports": self.exports,
                "points": self.points}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UndoRecord:
        return cls(str(data["id"]), str(data["created"]), str(data["state"]),
                   dict(data.get("point") or {}),
                   [ReplacedFile(**f) for f in data.get("files") or []],
                   dict(data.get("exports") or {}), data.get("used"),
                   list(data.get("points") or []))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


RECORD_ID_FORMAT = "%Y%m%dT%H%M%S%fZ"  # an undo record's id: when it was made, UTC


def new_record_id() -> str:
    return datetime.now(UTC).strftime(RECORD_ID_FORMAT)


def record_made(record_id: str) -> datetime | None:
    """When the rollback behind an undo record was made (None: not an id we wrote)."""
    try:
        return datetime.strptime(record_id, RECORD_ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def atomic_write(target: Path, source: Path | None, advance: Advance = _ignore) -> None:
    """Replace `target` with `source`'s bytes (or an empty file): temporary file, fsync,
    rename, fsync of the folder, so a crash leaves either the old or the new file.
    `advance` is told each block's size as it is written."""
    temporary = target.with_name(target.name + ".recovery-tmp")
    with open(temporary, "wb") as out:
        if source is not None:
            with open(source, "rb") as data:
                while block := data.read(BLOCK):
                    out.write(block)
                    advance(len(block))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def record_dir(root: Path, record_id: str) -> Path:
    return root / UNDO_DIR / record_id


def save_manifest(root: Path, record: UndoRecord) -> None:
    folder = record_dir(root, record.id)
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(record.to_dict(), sort_keys=False)
    temporary = folder / (MANIFEST + ".tmp")
    temporary.write_text(text)
    atomic_write(folder / MANIFEST, temporary)
    temporary.unlink()


def save_file(root: Path, record: UndoRecord, source: Path, name: str,
              advance: Advance = _ignore) -> str:
    """Copy `source` into the record as `name`, return its BLAKE3 (checked after copying)."""
    target = record_dir(root, record.id) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    expected = file_hash(source)
    atomic_write(target, source, advance)
    if file_hash(target) != expected:
        raise UndoError(f"The undo copy of {source.name} does not read back correctly.",
                        "The volume may be failing; nothing was replaced. Check the disk.")
    return expected


def list_records(opened: OpenVolume) -> list[UndoRecord]:
    """Undo records on the volume, newest first (read without mounting)."""
    base = "\\" + UNDO_DIR.replace("/", "\\")
    records = []
    for name in opened.list_dir(base):
        data = opened.read_file(f"{base}\\{name}\\{MANIFEST}")
        if data is None:
            continue
        try:
            records.append(UndoRecord.from_dict(yaml.safe_load(data)))
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise UndoError(f"The undo record {name} on the volume is damaged: {exc}.",
                            "Copy the folder System Volume Information\\recovery-undo\\"
                            f"{name} away and restore its files by hand.") from exc
    return sorted(records, key=lambda r: r.id, reverse=True)


def choose_record(records: list[UndoRecord], record_id: str | None) -> UndoRecord:
    if record_id is None:
        usable = [r for r in records if r.state == "applied"]
        if not usable:
            raise UndoError("There is no rollback on this volume that can be undone.",
                            "Look at the volume's rollback records.", hint=Hint.POINTS_HISTORY)
        return usable[0]
    for record in records:
        if record.id == record_id:
            if record.state != "applied":
                raise UndoError(f"Undo record {record_id} is '{record.state}', not 'applied'.",
                                "Only a rollback that was applied and not yet undone can be "
                                "undone.", hint=Hint.POINTS_HISTORY)
            return record
    raise UndoError(f"There is no undo record '{record_id}' on this volume.",
                    "Use one of the volume's record ids.", hint=Hint.POINTS_HISTORY)


def restore_record(root: Path, record: UndoRecord, advance: Advance = _ignore) -> list[str]:
    """Put back every file the record saved (hash-checked first); returns the paths.
    `advance` counts the bytes written (the sum of the saved files' sizes)."""
    folder = record_dir(root, record.id)
    for item in record.files:
        if item.saved is not None and file_hash(folder / item.saved) != item.blake3:
            raise UndoError(f"The saved copy of {item.path} in undo record {record.id} is "
                            "damaged (its BLAKE3 does not match).",
                            "Nothing was changed. Copy the record folder off the volume and "
                            "check the disk.")
    restored = []
    for item in record.files:
        target = root / PurePosixPath(item.path)
        if item.saved is None:
            target.unlink(missing_ok=True)
        else:
            atomic_write(target, folder / item.saved, advance)
        restored.append(item.path)
    record.state, record.used = "used", now_iso()
    save_manifest(root, record)
    return restored
