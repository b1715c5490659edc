"""Which Windows PC a disk belongs to: the computer name in its SYSTEM hive.

Read without mounting (libfsntfs over the disk, like the rest of recovery.registry), so the
source disk is only ever read. A shop with one store for every customer finds a PC's
images by this name (`recovery images --computer NAME`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from recovery.errors import RecoveryError
from recovery.registry.hives import load_hive
from recovery.registry.volume import (
    CONFIG_DIR,
    OpenVolume,
    WindowsVolume,
    open_file_volume,
    open_volume,
)

log = logging.getLogger(__name__)
_NAME_KEY = "\\ControlSet{:03d}\\Control\\ComputerName\\ComputerName"
# What a rescue image records when the captured SYSTEM hive (or the MFT that finds it)
# holds bytes the failing disk would not give.
UNREADABLE_NAME = "unknown (SYSTEM hive unreadable)"


def computer_name(source: Path, offset: int, size: int) -> str:
    """The computer name of the Windows on the NTFS volume at `offset` of `source`; ""
    when there is none or it cannot be read (a capture goes on without it)."""
    return _read_name(lambda: open_volume(WindowsVolume(source, offset, size)), "")


def image_computer_name(volume: WindowsVolume, make_view: Callable[[], Any]) -> str:
    """The computer name from a captured partition (`make_view`: recovery.store.imageview
    views of it, which refuse what a rescue could not read): UNREADABLE_NAME when the
    hive cannot be read from the image, "" when there is no name."""
    return _read_name(lambda: open_file_volume(volume, make_view), UNREADABLE_NAME)


def _read_name(opener: Callable[[], AbstractContextManager[OpenVolume]], unreadable: str
               ) -> str:
    try:
        with opener() as opened:
            data = opened.read_file(f"{CONFIG_DIR}\\SYSTEM")
    except (RecoveryError, OSError) as exc:
        # OSError: libfsntfs passes on a read error of a failing disk, or the image view's
        # refusal of bytes a rescue could not read (the name only helps find images).
        log.debug("no computer name: %s", exc)
        return unreadable
    if not data:
        return ""
    with tempfile.NamedTemporaryFile(prefix="recovery-system-", suffix=".hive") as handle:
        handle.write(data)
        handle.flush()
        return hive_computer_name(Path(handle.name))


def hive_computer_name(path: Path) -> str:
    """ComputerName of the current control set of the SYSTEM hive at `path` (else of
    ControlSet001), or ""."""
    try:
        hive = load_hive(path)
    except Exception as exc:  # regipy raises many kinds on a damaged hive
        log.debug("SYSTEM hive %s unreadable: %s", path, exc)
        return ""
    sets = [1]
    try:
        current = hive.get_key("\\Select").get_value("Current", raise_on_missing=False)
        if isinstance(current, int):
            sets.insert(0, current)
    except Exception:  # no \Select: try ControlSet001 alone
        pass
    for number in sets:
        try:
            value = hive.get_key(_NAME_KEY.format(number)).get_value(
                "ComputerName", raise_on_missing=False)
        except Exception:
            continue
        if isinstance(value, str) and value.strip():
            return value.strip().rstrip("\x00")
    return ""
