"""Byte layouts of Volume Shadow Copy metadata, as documented by libvshadow.

Reference: libyal/libvshadow, documentation/Volume Shadow Snapshot (VSS) format.asciidoc.
Everything is little-endian, every metadata block is 16 KiB and starts with a 128-byte
block header; offsets are relative to the start of the volume unless said otherwise.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

BLOCK = 0x4000
HEADER_SIZE = 128
VOLUME_HEADER_OFFSET = 0x1E00
VSS_IDENTIFIER = uuid.UUID("3808876b-c176-4e48-b7ae-04046e6cc752")
# The "unknown identifier" real stores carry at the start of the store information.
STORE_INFO_IDENTIFIER = uuid.UUID("ae9a9337-0048-4ed6-9874-71500654b7b3")

RECORD_VOLUME_HEADER = 1
RECORD_CATALOG = 2
RECORD_BLOCK_LIST = 3
RECORD_STORE_HEADER = 4
RECORD_RANGE_LIST = 5
RECORD_BITMAP = 6

DESCRIPTORS_PER_BLOCK = (BLOCK - HEADER_SIZE) // 32
RANGES_PER_BLOCK = (BLOCK - HEADER_SIZE) // 24
# Attribute flags Windows sets on System Restore shadow copies (persistent, no auto
# release, differential, auto-recover).
SYSTEM_RESTORE_ATTRIBUTES = 0x00420009


def filetime(moment: datetime) -> int:
    epoch = datetime(1601, 1, 1, tzinfo=UTC)
    return int((moment - epoch).total_seconds() * 10_000_000)


def block_header(record_type: int, relative: int, current: int, next_offset: int,
                 info_size: int = 0) -> bytes:
    head = struct.pack("<16sIIQQQQ", VSS_IDENTIFIER.bytes_le, 1, record_type, relative,
                       current, next_offset, info_size)
    return head.ljust(HEADER_SIZE, b"\0")


def volume_header(catalog_offset: int, volume_id: uuid.UUID) -> bytes:
    head = struct.pack("<16sIIQQQQQ16s16s", VSS_IDENTIFIER.bytes_le, 1, RECORD_VOLUME_HEADER,
                       VOLUME_HEADER_OFFSET, VOLUME_HEADER_OFFSET, 0, catalog_offset, 0,
                       volume_id.bytes_le, volume_id.bytes_le)
    return head.ljust(512, b"\0")


@dataclass(frozen=True)
class StoreLocation:
    """Where one store's metadata sits on the volume (what a type 0x03 entry points to)."""

    store_id: uuid.UUID
    header: int
    block_list: int
    range_list: int
    bitmap: int
    file_reference: int


def catalog_entries(volume_size: int, sequence: int, created: datetime,
                    where: StoreLocation) -> bytes:
    entry2 = struct.pack("<QQ16sQQQ", 2, volume_size, where.store_id.bytes_le, sequence, 0x40,
                         filetime(created)).ljust(128, b"\0")
    entry3 = struct.pack("<QQ16sQQQQQQ", 3, where.block_list, where.store_id.bytes_le,
                         where.header, where.range_list, where.bitmap, where.file_reference,
                         0, 0).ljust(128, b"\0")
    return entry2 + entry3


def catalog_block(offset: int, entries: bytes) -> bytes:
    if len(entries) > BLOCK - HEADER_SIZE:
        raise ValueError("too many stores for one catalog block")
    return (block_header(RECORD_CATALOG, 0, offset, 0) + entries).ljust(BLOCK, b"\0")


def store_header_block(offset: int, shadow_copy_id: uuid.UUID, set_id: uuid.UUID) -> bytes:
    machine = "recovery-test".encode("utf-16-le")
    info = struct.pack("<16s16s16sIIII", STORE_INFO_IDENTIFIER.bytes_le, shadow_copy_id.bytes_le,
                       set_id.bytes_le, 9, 1, SYSTEM_RESTORE_ATTRIBUTES, 0)
    info += struct.pack("<H", len(machine)) + machine + struct.pack("<H", len(machine)) + machine
    header = block_header(RECORD_STORE_HEADER, 0, offset, 0, info_size=len(info))
    return (header + info).ljust(BLOCK, b"\0")


def descriptor(original: int, relative: int, stored_at: int) -> bytes:
    return struct.pack("<QQQII", original, relative, stored_at, 0, 0)


def chained_blocks(record_type: int, items: list[bytes], per_block: int,
                   slots: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    """Pack items into 16 KiB blocks at (relative, volume) slots linked by next offsets."""
    groups = [items[i:i + per_block] for i in range(0, len(items), per_block)] or [[]]
    if len(groups) > len(slots):
        raise ValueError("not enough slots for the metadata blocks")
    blocks = []
    for index, group in enumerate(groups):
        relative, current = slots[index]
        following = slots[index + 1][1] if index + 1 < len(groups) else 0
        body = block_header(record_type, relative, current, following) + b"".join(group)
        blocks.append((current, body.ljust(BLOCK, b"\0")))
    return blocks


def range_entry(volume_offset: int, relative: int, size: int) -> bytes:
    return struct.pack("<QQQ", volume_offset, relative, size)


def bitmap_block(relative: int, offset: int) -> bytes:
    # All bits clear: no block is "unused", so reads fall through to the volume.
    return block_header(RECORD_BITMAP, relative, offset, 0).ljust(BLOCK, b"\0")
