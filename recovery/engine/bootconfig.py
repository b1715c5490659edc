"""Keep Windows' boot configuration valid when a restore moves partitions on an MBR disk.

On MBR disks the BCD names a partition by disk signature and byte offset: a BCD device
element holds a partition device (type 6, length 0x48) whose partition identifier is the
offset (u64) and whose disk identifier is the signature, with partition style 1 (MBR).
WinRE's ramdisk elements nest such a device (the partition holding Winre.wim), so every
nested occurrence is patched, not just the first. GPT devices name partition GUIDs, which
a restore keeps: nothing to do there. ReAgent.xml (reagentc's record of where WinRE lives)
names the same partition by offset in its WinreLocation/ImageLocation elements.
"""

from __future__ import annotations

import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from recovery.engine.fit import FittedLayout
from recovery.events import EventSink, Notice
from recovery.model.manifest import ImageManifest
from recovery.sys import hivexbind, ntfs3g

PARTITION_DEVICE = 6
DEVICE_LENGTH = 0x48
STYLE_MBR = 1
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
BCD_PATHS: tuple[tuple[str, ...], ...] = (("Boot", "BCD"), ("EFI", "Microsoft", "Boot", "BCD"))
REAGENT_PATHS: tuple[tuple[str, ...], ...] = (("Recovery", "WindowsRE", "ReAgent.xml"),
                 ("Windows", "System32", "Recovery", "ReAgent.xml"))
_LOCATION = re.compile(rb"(<(?:WinreLocation|ImageLocation)\b[^>]*?\boffset=\")(\d+)(\")")


@dataclass
class BootConfigReport:
    bcd_elements: int = 0  # device elements rewritten
    files: list[str] = field(default_factory=list)  # "partition N: path" of changed files


def is_device_element(element_type: int) -> bool:
    """BCD element types carry their format in bits 24-27; 1 is a device."""
    return (element_type >> 24) & 0xF == 1


def patch_device(data: bytes, signature: int, moves: dict[int, int]) -> bytes | None:
    """`data` with every MBR partition device on disk `signature` whose offset moved
    (old -> new in `moves`) pointing at the new offset; None when nothing matched."""
    out = bytearray(data)
    changed = False
    for pos in range(0, len(data) - 0x2C, 4):
        if _U32.unpack_from(data, pos)[0] != PARTITION_DEVICE or \
                _U32.unpack_from(data, pos + 8)[0] != DEVICE_LENGTH:
            continue
        if _U32.unpack_from(data, pos + 0x20)[0] != STYLE_MBR or \
                _U32.unpack_from(data, pos + 0x28)[0] != signature:
            continue
        offset = _U64.unpack_from(data, pos + 0x10)[0]
        if offset in moves:
            _U64.pack_into(out, pos + 0x10, moves[offset])
            changed = True
    return bytes(out) if changed else None


def patch_reagent(text: bytes, moves: dict[int, int]) -> bytes | None:
    """ReAgent.xml with moved offsets replaced (UTF-8 or UTF-16 as Windows wrote it)."""
    encoding = "utf-16" if text[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    raw = text.decode(encoding).encode("utf-8") if encoding == "utf-16" else text

    def swap(match: re.Match[bytes]) -> bytes:
        old = int(match.group(2))
        return match.group(1) + str(moves.get(old, old)).encode() + match.group(3)

    new = _LOCATION.sub(swap, raw)
    if new == raw:
        return None
    return new.decode("utf-8").encode("utf-16") if encoding == "utf-16" else new


def moves_of(layout: FittedLayout) -> dict[int, int]:
    return {c.old_start: c.new_start for c in layout.moved}


def update_boot_config(target: Path, manifest: ImageManifest, layout: FittedLayout,
                       events: EventSink) -> BootConfigReport:
    """Rewrite the BCD and ReAgent.xml on the restored NTFS volumes of an MBR disk."""
    report = BootConfigReport()
    moves = moves_of(layout)
    if manifest.table.scheme != "mbr" or not moves:
        return report
    signature = int(manifest.table.disk_id, 16)
    for part in manifest.captured_partitions:
        if part.fs_type != "ntfs":
            continue
        placed = next(p for p in layout.table.partitions if p.number == part.number)
        with tempfile.TemporaryDirectory(prefix="recovery-bcd-") as scratch, \
                ntfs3g.mount(target, placed.start, Path(scratch), True,
                             size=placed.size) as root:
            _update_volume(root, part.number, signature, moves, report)
    events(Notice(f"Boot configuration updated for the moved partitions: "
                  f"{report.bcd_elements} BCD element(s)"
                  + (f", {', '.join(report.files)}" if report.files else "") + "."))
    return report


def _update_volume(root: Path, number: int, signature: int, moves: dict[int, int],
                   report: BootConfigReport) -> None:
    for parts in BCD_PATHS:
        path = find_path(root, parts)
        if path is not None:
            changed = hivexbind.rewrite_bcd_elements(
                path, lambda kind, data: patch_device(data, signature, moves)
                if is_device_element(kind) else None)
            report.bcd_elements += changed
            if changed:
                report.files.append(f"partition {number}: {'/'.join(parts)}")
    for parts in REAGENT_PATHS:
        path = find_path(root, parts)
        new = patch_reagent(path.read_bytes(), moves) if path is not None else None
        if path is not None and new is not None:
            path.write_bytes(new)
            report.files.append(f"partition {number}: {'/'.join(parts)}")


def find_path(root: Path, parts: tuple[str, ...]) -> Path | None:
    """`root/parts...` matched case-insensitively, as Windows would; None if absent."""
    here = root
    for name in parts:
        match = next((child for child in here.iterdir()
                      if child.name.lower() == name.lower()), None) if here.is_dir() else None
        if match is None:
            return None
        here = match
    return here
