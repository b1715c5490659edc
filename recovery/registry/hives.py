"""Registry hive checks with regipy: header, checksum, sequence numbers, walkable keys.

A hive is offered for rollback only when it is not corrupt. "dirty" means its two header
sequence numbers differ (the last write did not finish); when transaction logs sit next
to it the hive "needs log replay" and must travel with those logs.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import blake3
import pyregf
from regipy.registry import RegistryHive

HIVE_NAMES = ("SYSTEM", "SOFTWARE", "SAM", "SECURITY", "DEFAULT")
USER_PREFIX = "USER_"  # user hives are named USER_<account>, e.g. USER_alice
LOG_SUFFIXES = (".LOG1", ".LOG2")
HiveStatus = Literal["ok", "dirty", "needs-log-replay", "corrupt", "empty", "missing"]
USABLE: frozenset[str] = frozenset({"ok", "dirty", "needs-log-replay"})


@dataclass(frozen=True)
class HiveCheck:
    name: str
    size: int
    status: HiveStatus
    blake3: str = ""
    primary_sequence: int | None = None
    secondary_sequence: int | None = None
    checksum_ok: bool = False
    keys: int = 0
    logs: tuple[str, ...] = ()  # log files that belong to this hive (non-empty ones)
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["logs"] = list(self.logs)
        return data


def normal_hive_name(name: str) -> str:
    """SYSTEM, SOFTWARE, ... in upper case; USER_<account> keeps the account's spelling."""
    if name.upper().startswith(USER_PREFIX):
        return USER_PREFIX + name[len(USER_PREFIX):]
    return name.upper()


def hive_location(name: str) -> tuple[str, str]:
    """(folder from the volume root, file name) of a hive on a running Windows volume."""
    if name.startswith(USER_PREFIX):
        return f"Users/{name.removeprefix(USER_PREFIX)}", "NTUSER.DAT"
    return "Windows/System32/config", name


def file_hash(path: Path) -> str:
    hasher = blake3.blake3()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()


def header_checksum(header: bytes) -> int:
    """The REGF header checksum: XOR of the first 127 dwords, 0 and -1 avoided."""
    value = 0
    for (word,) in struct.iter_unpack("<I", header[:508]):
        value ^= word
    if value == 0xFFFFFFFF:
        return 0xFFFFFFFE
    return 1 if value == 0 else value


def logs_of(path: Path) -> list[Path]:
    """The hive's .LOG1/.LOG2 next to it that hold data (empty logs carry nothing)."""
    found = []
    for suffix in LOG_SUFFIXES:
        log = path.with_name(path.name + suffix)
        if log.is_file() and log.stat().st_size > 0:
            found.append(log)
    return found


def load_hive(path: Path) -> Any:
    """A regipy RegistryHive (untyped library: callers get Any)."""
    return RegistryHive(str(path))  # type: ignore[no-untyped-call]


def count_keys(path: Path) -> int:
    """Walk every key with regipy, then again with libregf, which also checks that every
    sub-key list points at a real key cell (regipy reads whatever sits at the offset).
    Values are not decoded: that is 100 times slower and not needed to load the hive."""
    walked = 0
    for _key in load_hive(path).recurse_subkeys(fetch_values=False):
        walked += 1
    strict = pyregf.file()
    strict.open(str(path))
    try:
        pending, seen = [strict.get_root_key()], 0
        while pending:
            key = pending.pop()
            seen += 1
            pending.extend(key.sub_keys)
    finally:
        strict.close()
    if seen != walked:
        raise ValueError(f"libregf found {seen} keys where regipy found {walked}")
    return walked


def check_hive(path: Path, name: str | None = None) -> HiveCheck:
    name = name or path.name
    if not path.is_file():
        return HiveCheck(name, 0, "missing", problem=f"{path.name} does not exist")
    size = path.stat().st_size
    if size == 0:
        return HiveCheck(name, 0, "empty", problem=f"{path.name} is a zero-byte file")
    digest = file_hash(path)
    logs = tuple(log.name for log in logs_of(path))
    with open(path, "rb") as handle:
        header = handle.read(4096)
    if len(header) < 4096 or header[:4] != b"regf":
        return HiveCheck(name, size, "corrupt", digest, logs=logs,
                         problem="no registry hive header ('regf' signature missing)")
    primary, secondary = struct.unpack_from("<II", header, 4)
    stored = struct.unpack_from("<I", header, 508)[0]
    checksum_ok = stored == header_checksum(header)
    base = HiveCheck(name, size, "ok", digest, primary, secondary, checksum_ok, logs=logs)
    if not checksum_ok:
        return _with(base, "corrupt", f"header checksum 0x{stored:08x} is wrong")
    try:
        keys = count_keys(path)
    except Exception as exc:  # regipy raises many kinds on damaged cells
        return _with(base, "corrupt", f"keys cannot be walked: {str(exc).splitlines()[0][:160]}")
    status: HiveStatus = "ok"
    if primary != secondary:
        status = "needs-log-replay" if logs else "dirty"
    return HiveCheck(name, size, status, digest, primary, secondary, True, keys, logs)


def _with(base: HiveCheck, status: HiveStatus, problem: str) -> HiveCheck:
    return HiveCheck(base.name, base.size, status, base.blake3, base.primary_sequence,
                     base.secondary_sequence, base.checksum_ok, 0, base.logs, problem)


@dataclass(frozen=True)
class SystemHealth:
    """Can the current SYSTEM hive be loaded, which ControlSet boots, is it dirty."""

    check: HiveCheck
    current_control_set: int | None
    last_known_good: int | None

    def to_dict(self) -> dict[str, object]:
        return {"hive": self.check.to_dict(), "loadable": self.check.usable,
                "current_control_set": self.current_control_set,
                "last_known_good": self.last_known_good}


def system_health(path: Path) -> SystemHealth:
    check = check_hive(path, "SYSTEM")
    current = known_good = None
    if check.usable:
        try:
            select = load_hive(path).get_key("\\Select")
            current = _int_value(select, "Current")
            known_good = _int_value(select, "LastKnownGood")
        except Exception:  # a SYSTEM hive without \Select still loads
            pass
    return SystemHealth(check, current, known_good)


def _int_value(key: object, name: str) -> int | None:
    value = key.get_value(name, raise_on_missing=False)  # type: ignore[attr-defined]
    return value if isinstance(value, int) else None
