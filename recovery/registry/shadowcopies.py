"""Which shadow copy (Volume Shadow Copy, a Windows restore point) of a volume still holds
a readable copy of a file the current volume lost: a rescue capture asks this for each
damaged file, reading the captured volume and never the failing disk.

A shadow copy keeps only the blocks changed since it was taken (in its diff area inside
System Volume Information); every other block it reads from the volume itself. So a
copy is only good when reading it touches no unreadable byte: the view given here must
refuse those bytes (an OSError), as recovery.store.imageview does, never hand out the
zeros an image holds there. Store numbers are those of `restore-points list` (vss-N).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyfsntfs
import pyvshadow

from recovery.registry.hives import header_checksum

log = logging.getLogger(__name__)
CopyStatus = Literal["readable", "unreadable", "absent"]


@dataclass(frozen=True)
class ShadowCopyCheck:
    point: str  # the restore point id: vss-1, vss-2, ... (oldest first)
    created: datetime
    status: CopyStatus

    def describe(self) -> str:
        return f"{self.point} of {self.created:%Y-%m-%d %H:%M} UTC"


class ShadowCopies:
    """The shadow copies of the volume `make_view()` reads (each call a new file object
    over the same bytes); `close()` when done."""

    def __init__(self, make_view: Callable[[], Any]) -> None:
        self._vss: Any = None
        self._stores: list[tuple[str, datetime, Any]] = []
        view = make_view()
        try:
            if not pyvshadow.check_volume_signature_file_object(view):
                return
            self._vss = pyvshadow.volume()
            self._vss.open_file_object(view)
            for index in range(self._vss.number_of_stores):
                store = self._vss.get_store(index)
                self._stores.append((f"vss-{index + 1}",
                                     store.creation_time.replace(tzinfo=UTC),
                                     _open_ntfs(store)))
        except OSError as exc:  # the VSS catalog itself is unreadable
            log.debug("shadow copies unreadable: %s", exc)

    @property
    def count(self) -> int:
        return len(self._stores)

    def check(self, path: str, hive: bool = False) -> list[ShadowCopyCheck]:
        """`path` (backslashes, from the volume root) in each shadow copy, oldest first.
        `hive`: a registry hive must also start with a valid header."""
        return [ShadowCopyCheck(point, created, _status(fs, path, hive))
                for point, created, fs in self._stores]

    def note(self, path: str, hive: bool = False) -> str:
        """A sentence for the damaged-file report: which copies can give the file back."""
        if not self._stores:
            return ""
        found = self.check(path, hive)
        good = [c for c in reversed(found) if c.status == "readable"]
        if good:
            which = ", ".join(c.describe() for c in good)
            return (f"shadow copy {which} holds a readable copy" if len(good) == 1 else
                    f"shadow copies {which} hold readable copies")
        held = sum(c.status == "unreadable" for c in found)
        return (f"none of the volume's {len(found)} shadow copies holds a readable copy"
                + (f" ({held} of them {'has' if held == 1 else 'have'} it, but reading "
                   "it hits unreadable bytes)" if held else ""))

    def close(self) -> None:
        for _point, _created, fs in self._stores:
            if fs is not None:
                fs.close()
        if self._vss is not None:
            self._vss.close()


def _open_ntfs(store: Any) -> Any:
    fs = pyfsntfs.volume()
    try:
        fs.open_file_object(store)
    except OSError as exc:  # this copy's NTFS metadata reads an unreadable byte
        log.debug("shadow copy NTFS unreadable: %s", exc)
        return None
    return fs


def _status(fs: Any, path: str, hive: bool) -> CopyStatus:
    if fs is None:
        return "unreadable"
    try:
        entry = fs.get_file_entry_by_path(path)
        if entry is None or entry.has_directory_entries_index():
            return "absent"
        data: bytes = entry.read_buffer(entry.size) if entry.size else b""
    except OSError:
        return "unreadable"
    if hive and not _good_hive_header(data):
        return "unreadable"
    return "readable"


def _good_hive_header(data: bytes) -> bool:
    if len(data) < 4096 or data[:4] != b"regf":
        return False
    return bool(struct.unpack_from("<I", data, 508)[0] == header_checksum(data[:4096]))
