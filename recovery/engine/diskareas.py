"""The disk's own areas on a failing disk (a rescue capture): LBA 0, the primary GPT after
it, the backup GPT at the end and the post-MBR gap, read past unreadable sectors; the
partition table from whichever copy reads; and what the unreadable bytes held.

A normal capture stops at the first unreadable sector there (exit 11). A rescue goes on:
the GPT is kept twice on purpose, and firmware and Windows fall back to the backup when
the primary is damaged, so the table is taken from the copy that reads (UEFI 2.10
§5.3.2). The bytes that do not read are stored as zeros and listed per area in the
manifest (ImageManifest.disk_unreadable): they belong to no partition. A restore writes
both GPT copies and the protective MBR from the table, so an unreadable copy loses
nothing; unreadable boot code in the post-MBR gap is restored as zeros. An MBR disk's
EBR chain is read the same way (recovery.engine.rescue_ebr): a logical partition whose EBR
does not read is rebuilt from its boot sector and the next EBR, or named as lost.
"""

from __future__ import annotations

import logging
from functools import partial

from recovery.engine.rescue_ebr import LostEbr, rescue_logical_entries
from recovery.engine.table import boot_areas, describe, read_table, read_table_raw
from recovery.errors import DeviceIOError, UnsupportedLayoutError
from recovery.model import gpt
from recovery.model.extents import Extent, clip, normalise
from recovery.model.layout import PartitionTable
from recovery.model.manifest import DiskArea, DiskAreaDamage
from recovery.sys.blockdev import BlockDevice
from recovery.sys.directio import thread_buffer
from recovery.units import KiB, align_down, align_up

log = logging.getLogger(__name__)

# LBA 0 and the primary GPT (34 sectors of 512 bytes, 6 of 4096) at the start; the backup
# GPT (33 or 5 sectors) at the end. Read once per reader and kept.
EDGE = 24 * KiB
TRIES = 3  # reads of one failing sector before it counts as unreadable


class DiskAreaReader:
    """Reads of the disk's own areas that go on past unreadable sectors.

    A range that fails is read again sector by sector past the page cache (a sector must
    fail alone, not with the rest of its page), each sector up to TRIES times; what still
    fails reads as zeros and is noted in `bad` (disk offsets). `table_copy` is set by
    rescue_table(): the GPT copy the table came from.
    """

    def __init__(self, device: BlockDevice) -> None:
        self.device = device
        self.sector = device.logical_sector_size
        self.bad: list[Extent] = []
        self.table_copy = ""
        self.lost_ebrs: dict[int, LostEbr] = {}  # by disk offset, set by rescue_table()
        edge = min(EDGE, align_down(device.size // 2, self.sector))
        self._kept = {0: self._read(0, edge),
                      device.size - edge: self._read(device.size - edge, edge)}

    def read_at(self, offset: int, length: int) -> bytes:
        for start, data in self._kept.items():
            if start <= offset and offset + length <= start + len(data):
                return data[offset - start: offset - start + length]
        return self._read(offset, length)

    def unreadable(self, offset: int, length: int) -> bool:
        return bool(clip(self.bad, offset, offset + length))

    def _read(self, offset: int, length: int) -> bytes:
        first = align_down(offset, self.sector)
        end = min(align_up(offset + length, self.sector), self.device.size)
        try:
            data = self._direct(first, end - first)
        except DeviceIOError as exc:
            if exc.gone:  # an unplugged disk is not a bad sector: zeros would be a lie
                raise
            data = b"".join(self._sector(at) for at in range(first, end, self.sector))
        return data[offset - first: offset - first + length]

    def _sector(self, offset: int) -> bytes:
        for _ in range(TRIES):
            try:
                return self._direct(offset, self.sector)
            except DeviceIOError as exc:
                if exc.gone:
                    raise
        self.bad = normalise([*self.bad, (offset, self.sector)])
        return bytes(self.sector)

    def _direct(self, offset: int, length: int) -> bytes:
        window = thread_buffer(length, "disk-areas")[:length]
        if self.device.direct().read_into(offset, window, self.sector):
            return bytes(window)
        return self.device.read_at(offset, length)


def rescue_table(reader: DiskAreaReader) -> PartitionTable:
    """The partition table of a failing disk: as read_table reads it when the disk's own
    areas read; otherwise from the raw sectors that do, the other GPT copy standing in for
    an unreadable one. Refuses, saying what to do, when no copy reads."""
    device = reader.device
    sector = device.logical_sector_size if device.is_block_device else _file_sector(reader)
    chain = partial(_logical_entries, reader, sector)
    mbr = gpt.parse_mbr(reader.read_at(0, sector))
    if mbr.valid and not mbr.protective:  # libparted stops at an EBR that does not read
        for extended in (e for e in mbr.entries if e.type_id in gpt.EXTENDED_TYPES):
            chain(extended)
    if not reader.bad:
        return read_table(device)
    found = read_table_raw(device, reader.read_at, sector, chain)
    if found is None:
        raise _no_readable_table(reader, sector)
    table, reader.table_copy = found
    log.warning("unreadable sectors in the disk areas of %s (%s); table from %s",
                device.path, reader.bad, reader.table_copy or "the MBR")
    return table


def _logical_entries(reader: DiskAreaReader, sector: int, extended: gpt.MbrEntry
                     ) -> list[gpt.MbrEntry]:
    """The EBR chain read past bad sectors (recovery.engine.rescue_ebr); the EBRs that did
    not read are kept for area_damage."""
    found, lost = rescue_logical_entries(reader.read_at, reader.unreadable, sector, extended)
    reader.lost_ebrs.update((item.offset, item) for item in lost)
    return found


def _file_sector(reader: DiskAreaReader) -> int:
    """An image file's sector size: where a GPT header is (as table_sector_size)."""
    for size in (512, 4096):
        if reader.read_at(size, 8) == gpt.GPT_SIGNATURE:
            return size
    return reader.sector


def _no_readable_table(reader: DiskAreaReader, sector: int) -> UnsupportedLayoutError:
    size = reader.device.size
    parts = [("LBA 0 (the MBR)", 0, sector), ("the primary GPT", sector, 34 * 512),
             ("the backup GPT", size - 33 * 512, size)]
    unreadable = [name for name, start, end in parts if clip(reader.bad, start, end)]
    return UnsupportedLayoutError(
        f"The partition table of {describe(reader.device)} cannot be read from any copy: "
        f"{' and '.join(unreadable) or 'no sector'} could not be read, and no readable "
        "copy of the table is left.",
        "Nothing was captured. Without the table the partitions cannot be found, so "
        "capturing them one by one is not possible either. Copy the whole disk with GNU "
        "ddrescue onto a healthy disk at least as large, let testdisk find the partitions "
        "on the copy (it searches for their boot sectors) and write the table there, then "
        "capture the copy.")


def read_boot_areas(reader: DiskAreaReader, table: PartitionTable
                    ) -> list[tuple[str, int, bytes]]:
    """(name, offset, bytes) of table.boot_areas, unreadable sectors as zeros."""
    return [(name, offset, reader.read_at(offset, length))
            for name, offset, length in boot_areas(table)]


def area_damage(reader: DiskAreaReader, table: PartitionTable) -> list[DiskAreaDamage]:
    """The unreadable bytes of the disk's own areas, each with what lived there and what a
    restore does; bad sectors outside them (unused gaps) lose nothing and are left out."""
    return [DiskAreaDamage(area, offset, length, what, restore)
            for area, start, end, what, restore in _areas(reader, table)
            for offset, length in clip(reader.bad, start, end)]


def _areas(reader: DiskAreaReader, table: PartitionTable
           ) -> list[tuple[DiskArea, int, int, str, str]]:
    sector, size, copy = table.sector_size, table.disk_size, reader.table_copy
    if table.scheme == "mbr":  # (an unreadable LBA 0 leaves no MBR table: refused)
        gap: list[tuple[DiskArea, int, int, str, str]] = [
            ("post-mbr-gap", start, start + length,
             "boot code after the MBR (a boot manager such as GRUB or a disk-encryption "
             "loader keeps code here; Windows' own MBR code does not use it)",
             "written as zeros: Windows boots without it; a boot manager that lived there "
             "must be installed again")
            for name, start, length in boot_areas(table) if name == "post-mbr-gap"]
        return gap + [("ebr", lost.offset, lost.offset + sector, lost.what(sector),
                       lost.restore()) for lost in reader.lost_ebrs.values()]
    used = {"primary": "the primary GPT was used", "backup": "the backup GPT was used"}
    rewrite = ("both GPT copies and the protective MBR are written from the partition "
               "table, so nothing is lost")
    areas: list[tuple[DiskArea, int, int, str, str]] = [
        ("mbr", 0, sector, "LBA 0: the protective MBR (UEFI PCs do not run its boot code)",
         f"{rewrite}; its boot code area is written as zeros"),
        ("primary-gpt", sector, table.first_usable_lba * sector,
         f"primary GPT (header and partition entries) - {used.get(copy, 'unread')}",
         rewrite),
        ("backup-gpt", (table.last_usable_lba + 1) * sector, size,
         f"backup GPT at the end of the disk - {used.get(copy, 'unread')}", rewrite)]
    return areas
