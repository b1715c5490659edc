"""The raw GPT and MBR fields libparted does not expose, parsed from the on-disk bytes.

libparted 3.5 (Debian 12) gives us the partitions but not the disk GUID, partition GUIDs,
type GUIDs, attribute bits, usable-LBA range, entry-array geometry or the MBR system byte;
Windows' BCD depends on several of them, so they are read here straight from the sectors
(UEFI spec 2.10 §5.3 for GPT; the classic IBM PC layout for MBR/EBR).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

GPT_SIGNATURE = b"EFI PART"
MBR_SIGNATURE_OFFSET = 440
BOOT_CODE_SIZE = 440
PARTITION_ENTRIES_OFFSET = 446
EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
PROTECTIVE_TYPE = 0xEE
MAX_LOGICAL = 128  # an EBR chain longer than this is a loop, not a disk

_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_ENTRY = struct.Struct("<16s16sQQQ72s")
_MBR_ENTRY = struct.Struct("<B3sB3sII")

ReadAt = Callable[[int, int], bytes]


@dataclass(frozen=True)
class GptHeader:
    current_lba: int
    backup_lba: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: str
    entries_lba: int
    entry_count: int
    entry_size: int
    entries_crc: int


@dataclass(frozen=True)
class GptEntry:
    number: int  # 1-based slot in the entry array, as libparted and sgdisk number them
    type_guid: str
    guid: str
    first_lba: int
    last_lba: int
    attributes: int
    name: str


@dataclass(frozen=True)
class MbrEntry:
    slot: int  # 1..4 in the MBR; logical partitions get 5, 6, ... in chain order
    bootable: bool
    type_id: int
    start_lba: int  # absolute
    sectors: int


@dataclass(frozen=True)
class MbrSector:
    signature: int  # the 32-bit disk signature at byte 440 (little endian on disk)
    entries: tuple[MbrEntry, ...]  # non-empty slots only
    valid: bool  # ends in 55 AA

    @property
    def protective(self) -> bool:
        return any(entry.type_id == PROTECTIVE_TYPE for entry in self.entries)


def guid_text(raw: bytes) -> str:
    """GPT stores GUIDs mixed-endian; this is the form sgdisk and Windows print."""
    return str(uuid.UUID(bytes_le=raw)).upper()


def parse_gpt_header(sector: bytes) -> GptHeader | None:
    """The header at the start of `sector`, or None when the signature or CRC is wrong."""
    if len(sector) < 92 or sector[:8] != GPT_SIGNATURE:
        return None
    fields = _HEADER.unpack_from(sector)
    header_size = fields[2]
    if not 92 <= header_size <= len(sector):
        return None
    stored_crc = fields[3]
    blanked = sector[:16] + b"\0\0\0\0" + sector[20:header_size]
    if zlib.crc32(blanked) != stored_crc:
        return None
    (_, _, _, _, _, current, backup, first, last, disk_guid, entries_lba, count, size,
     entries_crc) = fields
    if size < 128 or size % 8 or count == 0:
        return None
    return GptHeader(current, backup, first, last, guid_text(disk_guid), entries_lba, count,
                     size, entries_crc)


def parse_gpt_entries(header: GptHeader, data: bytes) -> list[GptEntry] | None:
    """The used entries of the array `data`, or None when its CRC does not match."""
    array = data[: header.entry_count * header.entry_size]
    if zlib.crc32(array) != header.entries_crc:
        return None
    entries: list[GptEntry] = []
    for index in range(header.entry_count):
        raw = array[index * header.entry_size: index * header.entry_size + _ENTRY.size]
        type_guid, unique, first, last, attributes, name = _ENTRY.unpack(raw)
        if type_guid == bytes(16):
            continue
        text = name.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        entries.append(GptEntry(index + 1, guid_text(type_guid), guid_text(unique), first,
                                last, attributes, text))
    return entries


def read_gpt(read_at: ReadAt, sector_size: int, disk_sectors: int
             ) -> tuple[GptHeader, list[GptEntry]] | None:
    """Primary GPT, else the backup at the last LBA (what firmware does); None if neither."""
    for lba in (1, disk_sectors - 1):
        found = read_gpt_copy(read_at, sector_size, disk_sectors, lba)
        if found is not None:
            return found
    return None


def read_gpt_copy(read_at: ReadAt, sector_size: int, disk_sectors: int, lba: int
                  ) -> tuple[GptHeader, list[GptEntry]] | None:
    """The GPT whose header is at `lba` (1: primary, last LBA: backup), None if damaged."""
    header = parse_gpt_header(read_at(lba * sector_size, sector_size))
    if header is None:
        return None
    length = header.entry_count * header.entry_size
    if header.entries_lba + -(-length // sector_size) > disk_sectors:
        return None
    entries = parse_gpt_entries(header, read_at(header.entries_lba * sector_size, length))
    return None if entries is None else (header, entries)


def parse_mbr(sector: bytes) -> MbrSector:
    """LBA 0: disk signature and the four primary slots (empty slots left out)."""
    entries: list[MbrEntry] = []
    for index in range(4):
        status, _, type_id, _, start, sectors = _MBR_ENTRY.unpack_from(
            sector, PARTITION_ENTRIES_OFFSET + 16 * index)
        if type_id == 0 or sectors == 0:
            continue
        entries.append(MbrEntry(index + 1, status == 0x80, type_id, start, sectors))
    signature = struct.unpack_from("<I", sector, MBR_SIGNATURE_OFFSET)[0]
    return MbrSector(signature, tuple(entries), sector[510:512] == b"\x55\xaa")


def read_logical_entries(read_at: ReadAt, sector_size: int, extended: MbrEntry
                         ) -> list[MbrEntry]:
    """Walk the EBR chain of `extended`: logical partitions numbered 5, 6, ... in order."""
    logical: list[MbrEntry] = []
    ebr_lba: int | None = extended.start_lba
    seen: set[int] = set()
    while ebr_lba is not None and ebr_lba not in seen and len(logical) < MAX_LOGICAL:
        seen.add(ebr_lba)
        ebr = parse_ebr(read_at(ebr_lba * sector_size, sector_size), ebr_lba, extended,
                        5 + len(logical))
        if ebr is None:
            break
        if ebr.logical is not None:
            logical.append(ebr.logical)
        ebr_lba = ebr.next_lba
    return logical


@dataclass(frozen=True)
class Ebr:
    logical: MbrEntry | None  # its logical partition, with an absolute start
    next_lba: int | None  # the next EBR of the chain


def parse_ebr(sector: bytes, ebr_lba: int, extended: MbrEntry, slot: int) -> Ebr | None:
    """The EBR at `ebr_lba` (None: no EBR there). Its first entry is relative to the EBR
    itself, its second (the link to the next EBR) to the start of the extended partition."""
    if sector[510:512] != b"\x55\xaa":
        return None
    raw = [_MBR_ENTRY.unpack_from(sector, PARTITION_ENTRIES_OFFSET + 16 * i) for i in range(2)]
    status, _, type_id, _, start, sectors = raw[0]
    logical = MbrEntry(slot, status == 0x80, type_id, ebr_lba + start, sectors) \
        if type_id and sectors else None
    _, _, link_type, _, link_start, link_sectors = raw[1]
    linked = link_type in EXTENDED_TYPES and link_sectors
    return Ebr(logical, extended.start_lba + link_start if linked else None)


def looks_like_boot_sector(sector: bytes) -> str | None:
    """The file system whose boot sector this is (a partition given as a disk), or None."""
    oem = sector[3:11]
    if oem == b"NTFS    ":
        return "NTFS"
    if oem == b"-FVE-FS-":
        return "BitLocker"
    if oem == b"EXFAT   ":
        return "exFAT"
    if sector[82:90] == b"FAT32   ":
        return "FAT32"
    if sector[54:59] in (b"FAT12", b"FAT16") and sector[510:512] == b"\x55\xaa":
        return sector[54:59].decode()
    return None


def with_usable_range(sector: bytes, first_usable: int, last_usable: int) -> bytes:
    """A copy of the GPT header in `sector` with another usable-LBA range and a fresh CRC.

    sgdisk always derives the range from the disk size; Windows' own or other tools' values
    may differ, and a restore to the same disk must give them back unchanged.
    """
    header_size = struct.unpack_from("<I", sector, 12)[0]
    patched = bytearray(sector)
    struct.pack_into("<QQ", patched, 40, first_usable, last_usable)
    struct.pack_into("<I", patched, 16, 0)
    struct.pack_into("<I", patched, 16, zlib.crc32(bytes(patched[:header_size])))
    return bytes(patched)
