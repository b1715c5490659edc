"""What differs between the current hive and a restore point's: keys added, removed, and
keys whose values changed, counted per top-level key; the full list under one key.

Both hives are walked with libregf (pyregf), which reads raw value data fast (regipy
decodes every value and is about 100 times slower on a SYSTEM hive); values are compared
only for keys present in both hives whose last-write time or value count differ, since
Windows updates a key's last-write time whenever one of its values changes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyregf

Change = Literal["added", "removed", "changed"]
SERVICES = ("services",)
ROOT = "\\"


@dataclass(frozen=True)
class KeyChange:
    path: str
    change: Change  # "added": in the current hive only, i.e. created since the point
    values: tuple[str, ...] = ()  # names of values that differ (for "changed")


@dataclass
class HiveDiff:
    hive: str
    counts: dict[str, dict[str, int]]
    changes: list[KeyChange] = field(default_factory=list)
    services_added: list[str] = field(default_factory=list)
    services_removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"hive": self.hive, "counts": self.counts,
                "changes": [{"path": c.path, "change": c.change, "values": list(c.values)}
                            for c in self.changes],
                "services_added": self.services_added,
                "services_removed": self.services_removed, "problems": self.problems}


@dataclass
class _Walk:
    keys: dict[str, Any]  # path -> pyregf key
    handle: Any  # the open pyregf file, kept open while its keys are used
    problem: str | None = None


def _walk(path: Path, label: str) -> _Walk:
    """Every key libregf can reach; a damaged part is skipped and reported."""
    handle = pyregf.file()
    keys: dict[str, Any] = {}
    problems: list[str] = []
    try:
        handle.open(str(path))
        pending: list[tuple[str, Any]] = [("", handle.get_root_key())]
    except OSError as exc:
        return _Walk(keys, handle, f"the {label} hive cannot be read: {_first(exc)}")
    while pending:
        prefix, key = pending.pop()
        here = prefix or ROOT
        keys[here] = key
        for index in range(key.number_of_sub_keys):
            try:
                child = key.get_sub_key(index)
            except OSError as exc:  # keep the sub-keys that can still be read
                problems.append(f"{here}: {_first(exc)}")
                continue
            pending.append((prefix + ROOT + child.name, child))
    problem = None
    if problems:
        problem = (f"the {label} hive cannot be read completely ({len(problems)} damaged "
                   f"sub-keys, the first under {problems[0]})")
    return _Walk(keys, handle, problem)


def _first(exc: Exception) -> str:
    return str(exc).split(". ")[0][:160]


def _signature(key: Any) -> tuple[int, int]:
    return key.get_last_written_time_as_integer(), key.number_of_values


def _values(key: Any) -> dict[str, tuple[int, bytes]]:
    try:
        return {value.name or "": (value.type, value.data or b"") for value in key.values}
    except OSError:
        return {}


def diff_hives(current: Path, point: Path, name: str, key: str | None = None) -> HiveDiff:
    now, then = _walk(current, "current"), _walk(point, "restore point's")
    changes: list[KeyChange] = []
    for path in now.keys.keys() - then.keys.keys():
        changes.append(KeyChange(path, "added"))
    for path in then.keys.keys() - now.keys.keys():
        changes.append(KeyChange(path, "removed"))
    for path in now.keys.keys() & then.keys.keys():
        if _signature(now.keys[path]) == _signature(then.keys[path]):
            continue
        old, new = _values(then.keys[path]), _values(now.keys[path])
        differing = tuple(sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n)))
        if differing:
            changes.append(KeyChange(path, "changed", differing))
    now.handle.close()
    then.handle.close()
    changes.sort(key=lambda c: c.path.lower())
    counts: dict[str, Counter[str]] = {}
    for change in changes:
        counts.setdefault(_top(change.path), Counter())[change.change] += 1
    result = HiveDiff(name, {top: {k: c[k] for k in ("added", "removed", "changed")}
                             for top, c in sorted(counts.items())},
                      problems=[p for p in (now.problem, then.problem) if p])
    result.services_added = _services(changes, "added")
    result.services_removed = _services(changes, "removed")
    if key is not None:
        prefix = "\\" + key.strip("\\").lower()
        result.changes = [c for c in changes if c.path.lower() == prefix
                          or c.path.lower().startswith(prefix + "\\")]
    return result


def _top(path: str) -> str:
    parts = path.strip("\\").split("\\")
    return parts[0] if parts[0] else "\\"


def _services(changes: list[KeyChange], kind: Change) -> list[str]:
    """Services and drivers (ControlSetNNN\\Services\\X) added or removed since the point."""
    names = set()
    for change in changes:
        parts = change.path.strip("\\").split("\\")
        if (change.change == kind and len(parts) == 3 and parts[0].lower().startswith(
                "controlset") and parts[1].lower() in SERVICES):
            names.add(parts[2])
    return sorted(names, key=str.lower)
