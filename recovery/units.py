"""Sizes as a technician reads them (decimal GB like the label on the drive) and parsing."""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_DECIMAL = [("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)]
_PARSE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|[kKMGT]|B)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB,
            "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
            "kib": KiB, "mib": MiB, "gib": GiB, "tib": 1024 * GiB}


def human_size(nbytes: int) -> str:
    """Decimal units, as drive vendors print them: 256060514304 -> '256.1 GB'."""
    for unit, factor in _DECIMAL:
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{nbytes} B"


def human_rate(bytes_per_second: float) -> str:
    return f"{bytes_per_second / 10**6:.0f} MB/s"


def parse_size(text: str) -> int:
    """'512M' and '2GiB' are binary, '2GB' decimal, a bare number is bytes."""
    match = _PARSE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    return int(float(number) * _FACTORS[(unit or "").lower()])


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment
