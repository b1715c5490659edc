"""What each partition is for, in the technician's words: boot, reserved, system, data."""

from __future__ import annotations

from recovery.fs.probe import VolumeInfo
from recovery.model.layout import Role, Scheme, TablePartition

ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
MSR = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
WINRE = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"

_GPT_ROLES: dict[str, Role] = {ESP: "boot", MSR: "reserved", WINRE: "reserved"}
_MBR_ROLES: dict[str, Role] = {"EF": "boot", "27": "reserved", "12": "reserved"}
_MBR_DATA_TYPES = {"07", "0B", "0C", "0E", "06", "04", "01", "17", "1B", "1C"}
_RESERVED_LABELS = {"system reserved", "recovery", "winre", "windows re tools"}

ALL_ROLES: tuple[Role, ...] = ("boot", "reserved", "system", "data", "unknown")


def classify(partition: TablePartition, scheme: Scheme, volume: VolumeInfo | None) -> Role:
    """The system volume wins over everything: it is what the technician came for."""
    if volume is not None and volume.windows_system:
        return "system"
    if scheme == "gpt":
        role = _GPT_ROLES.get(partition.type_id.upper())
        if role:
            return role
        known_data = partition.type_id.upper() == BASIC_DATA
    else:
        role = _MBR_ROLES.get(partition.type_id.upper())
        if role:
            return role
        # Windows Setup makes the 'System Reserved' partition active: it holds bootmgr.
        if partition.bootable:
            return "boot"
        known_data = partition.type_id.upper() in _MBR_DATA_TYPES
    if volume is not None and volume.label.strip().lower() in _RESERVED_LABELS:
        return "reserved"
    if known_data and volume is not None and volume.fs_type not in ("unknown", ""):
        return "data"
    return "unknown"


def parse_partitions(text: str) -> tuple[frozenset[Role] | None, frozenset[int] | None]:
    """'system,boot,4' -> ({'system','boot'}, {4}); 'all' or '' -> (None, None): every
    partition. Numbers are the partition numbers 'recovery disks' shows."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    numbers = frozenset(int(item) for item in items if item.isdigit())
    names = [item for item in items if not item.isdigit()]
    if not items or [name.lower() for name in names] == ["all"]:
        return None, None
    roles = parse_roles(",".join(names)) if names else frozenset()
    return roles, (numbers or None)


def parse_roles(text: str) -> frozenset[Role] | None:
    """'system,boot' -> {'system','boot'}; 'all' or '' -> None (every partition)."""
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    if not names or names == {"all"}:
        return None
    unknown = names.difference(ALL_ROLES)
    if unknown:
        from recovery.errors import UsageError

        raise UsageError(f"Unknown partition role(s): {', '.join(sorted(unknown))}.",
                         f"Use a comma-separated list of {', '.join(ALL_ROLES)}, or 'all'.")
    return frozenset(name for name in ALL_ROLES if name in names)
