"""Partition tables: read every identifier Windows relies on, write them back exactly.

Reading combines libparted (which partitions exist, MBR extended/logical structure) with
the raw GPT/MBR fields libparted does not expose (recovery.model.gpt). Writing goes through
sgdisk (GPT) and sfdisk (MBR) with sector-exact starts while the caller holds the disk
exclusively (their own request to re-read fails then and only warns); the holder asks the
kernel to re-read the table once everything is written (BlockDevice.reread_partitions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from recovery.engine import safety
from recovery.engine.devices import resolve_disk
from recovery.errors import Hint, UnsupportedLayoutError
from recovery.model import gpt
from recovery.model.layout import MbrKind, PartitionTable, TablePartition
from recovery.sys import losetup, parted, sfdisk, sgdisk
from recovery.sys.blockdev import BlockDevice
from recovery.units import human_size

log = logging.getLogger(__name__)

MAX_POST_MBR_GAP = 16 * 1024 * 1024  # boot loaders (GRUB core, TrueCrypt) fit far below this
CLEAR_LIMIT = 1024 * 1024  # old GPTs keep their entries in the first and last 16 KiB..1 MiB


# --- reading -----------------------------------------------------------------------------
def read_table(device: BlockDevice) -> PartitionTable:
    """The partition table of the whole disk `device` (never written to).

    Raises UnsupportedLayoutError when there is no GPT or MBR table, when the disk holds a
    bare file system (a partition given instead of a disk), or when the GPT is damaged.
    """
    if device.size < 2 * 4096:
        raise _no_table(describe(device))
    lba0 = device.read_at(0, 512)
    _refuse_bare_file_system(device, lba0)
    sector = table_sector_size(device)
    seen = parted.read_disk(device.path, image_file=not device.is_block_device,
                            sector_size=sector)
    name = describe(device, seen.model)
    if seen.label == "gpt":
        return _gpt_table(device, sector, seen, name)
    if seen.label in ("", "msdos") and gpt.parse_mbr(lba0).protective:
        # libparted 3.5 gives up when the primary header is gone; firmware and Windows use
        # the backup, and so do we (the raw entries then list the partitions alone).
        log.warning("primary GPT header on %s is unreadable; using the backup", name)
        return _gpt_table(device, sector, None, name)
    if seen.label == "msdos":
        return _mbr_table(device, sector, seen, lba0, name)
    if seen.label == "":
        raise _no_table(name)
    raise UnsupportedLayoutError(
        f"{name} has a '{seen.label}' partition table, which Windows does not use.",
        "Only GPT and MBR (DOS) disks can be captured; check that this is the right disk.")


def table_sector_size(device: BlockDevice) -> int:
    """The sector size the table on `device` counts in.

    A disk's own logical sector size; an image file has none, so it is inferred: where the
    GPT header sits, or for MBR which sector size puts boot sectors / EBRs at the partition
    starts (a 4K-sector MBR read as 512 points into the middle of nowhere). Ties keep the
    size `device` was opened with.
    """
    if device.is_block_device:
        return device.logical_sector_size
    for size in (512, 4096):
        if device.read_at(size, 8) == gpt.GPT_SIGNATURE:
            return size
    mbr = gpt.parse_mbr(device.read_at(0, 512))
    if not mbr.valid or mbr.protective:
        return device.logical_sector_size
    evidence = {size: _starts_with_boot_records(device, mbr, size) for size in (512, 4096)}
    if evidence[512] == evidence[4096]:
        return device.logical_sector_size
    return 512 if evidence[512] > evidence[4096] else 4096


def _starts_with_boot_records(device: BlockDevice, mbr: gpt.MbrSector, sector: int) -> int:
    found = 0
    for entry in mbr.entries:
        offset = entry.start_lba * sector
        if offset + sector <= device.size and device.read_at(offset + 510, 2) == b"\x55\xaa":
            found += 1
    return found


def looks_like_partition(device: BlockDevice) -> bool:
    """True when `device` starts with a file system instead of a table (e.g. /dev/sdb1)."""
    if device.size < 2 * 4096:
        return False
    return _bare_file_system(device, device.read_at(0, 512)) is not None


def describe(device: BlockDevice, model: str = "") -> str:
    """How error messages name the disk: its path, and its model when it has a real one."""
    return f"{device.path} ({model})" if model and device.is_block_device else str(device.path)


def _refuse_bare_file_system(device: BlockDevice, lba0: bytes) -> None:
    bare = _bare_file_system(device, lba0)
    if bare:
        raise UnsupportedLayoutError(
            f"{device.path} starts with a file system ({bare}), not a partition table: it is "
            "a single partition, not a whole disk.",
            "Give the whole disk (for example /dev/sdb, not /dev/sdb1).",
            hint=Hint.LIST_DISKS)


def _bare_file_system(device: BlockDevice, lba0: bytes) -> str | None:
    for size in {512, device.logical_sector_size}:
        if device.read_at(size, 8) == gpt.GPT_SIGNATURE:
            return None
    return gpt.looks_like_boot_sector(lba0)


def _no_table(name: str) -> UnsupportedLayoutError:
    return UnsupportedLayoutError(
        f"No partition table on {name}: this does not look like a Windows disk.",
        "Check that you chose the right disk; a new or wiped disk has nothing to capture.",
        hint=Hint.LIST_DISKS)


def _disagree(name: str, number: int) -> UnsupportedLayoutError:
    return UnsupportedLayoutError(
        f"The partition table on {name} is inconsistent: libparted and the raw table "
        f"disagree about partition {number}.",
        "The table may be damaged; check it with 'sgdisk -v' or 'sfdisk -V' before capturing.")


LogicalEntries = Callable[[gpt.MbrEntry], list[gpt.MbrEntry]]


def read_table_raw(device: BlockDevice, read_at: gpt.ReadAt, sector: int,
                   logical: LogicalEntries | None = None) -> tuple[PartitionTable, str] | None:
    """The table from its raw sectors alone, read through `read_at` (a rescue's reader,
    which gives zeros for unreadable sectors), and which GPT copy it came from ("primary",
    "backup"; "" for MBR); None when no copy of a table is there.

    Without libparted: its label probes read sectors all over the start of the disk, and
    on a failing disk any of them may be one that does not read. `logical`: the logical
    partitions of an extended one (default: its EBR chain read through `read_at`).
    """
    mbr = gpt.parse_mbr(read_at(0, sector))
    if mbr.valid and not mbr.protective:
        chain = logical or (lambda extended: gpt.read_logical_entries(read_at, sector,
                                                                         extended))
        return _raw_mbr_table(device, sector, mbr, chain), ""
    found = gpt.read_gpt(read_at, sector, device.size // sector)
    if found is None:
        return None
    copy = "primary" if found[0].current_lba == 1 else "backup"
    return _gpt_table(device, sector, None, describe(device), found), copy


def _gpt_table(device: BlockDevice, sector: int, seen: parted.PartedDisk | None, name: str,
               found: tuple[gpt.GptHeader, list[gpt.GptEntry]] | None = None
               ) -> PartitionTable:
    """`seen` (libparted's view) must list exactly the raw entries; None: raw entries only.
    `found`: the GPT already read (else it is read from `device`)."""
    found = found or gpt.read_gpt(device.read_at, sector, device.size // sector)
    if found is None:
        raise UnsupportedLayoutError(
            f"The GPT on {name} is damaged: neither the primary nor the backup copy passes "
            "its checksum.", "Repair the table (e.g. with gdisk) before capturing this disk.")
    header, entries = found
    if seen is not None:
        _check_agreement(seen, entries, name)
    partitions = tuple(TablePartition(
        number=entry.number, start=entry.first_lba * sector,
        size=(entry.last_lba - entry.first_lba + 1) * sector, type_id=entry.type_guid,
        guid=entry.guid, name=entry.name, attributes=entry.attributes) for entry in entries)
    return PartitionTable(
        scheme="gpt", sector_size=sector, disk_size=device.size, disk_id=header.disk_guid,
        partitions=partitions, first_usable_lba=header.first_usable_lba,
        last_usable_lba=header.last_usable_lba, entry_count=header.entry_count,
        entry_size=header.entry_size)


def _check_agreement(seen: parted.PartedDisk, entries: list[gpt.GptEntry], name: str) -> None:
    by_number = {entry.number: entry for entry in entries}
    for part in seen.partitions:
        entry = by_number.pop(part.number, None)
        if entry is None or entry.first_lba != part.start_sector \
                or entry.last_lba - entry.first_lba + 1 != part.sectors:
            raise _disagree(name, part.number)
    if by_number:
        raise _disagree(name, min(by_number))


def _mbr_table(device: BlockDevice, sector: int, seen: parted.PartedDisk, lba0: bytes,
               name: str) -> PartitionTable:
    mbr = gpt.parse_mbr(lba0)
    raw: dict[tuple[str, int], gpt.MbrEntry] = {}
    for entry in mbr.entries:
        raw["primary", entry.slot] = entry
        if entry.type_id in gpt.EXTENDED_TYPES:
            for logical in gpt.read_logical_entries(device.read_at, sector, entry):
                raw["logical", logical.start_lba] = logical
    partitions: list[TablePartition] = []
    for part in seen.partitions:
        key = ("logical", part.start_sector) if part.kind == "logical" else ("primary",
                                                                               part.number)
        match = raw.pop(key) if key in raw else None
        if match is None or match.start_lba != part.start_sector or match.sectors != part.sectors:
            raise _disagree(name, part.number)
        partitions.append(_mbr_partition(part.number, match, sector, part.kind))
    return _mbr_layout(device, sector, mbr, partitions)


def _raw_mbr_table(device: BlockDevice, sector: int, mbr: gpt.MbrSector,
                   logical: LogicalEntries) -> PartitionTable:
    """The MBR table from LBA 0 and the EBR chain alone, numbered as libparted numbers it
    (primary slots 1-4, logical partitions from 5 in chain order)."""
    partitions: list[TablePartition] = []
    for entry in mbr.entries:
        extended = entry.type_id in gpt.EXTENDED_TYPES
        partitions.append(_mbr_partition(entry.slot, entry, sector,
                                         "extended" if extended else "primary"))
        if extended:
            partitions += [_mbr_partition(found.slot, found, sector, "logical")
                           for found in logical(entry)]
    return _mbr_layout(device, sector, mbr, partitions)


def _mbr_partition(number: int, entry: gpt.MbrEntry, sector: int, kind: MbrKind
                   ) -> TablePartition:
    return TablePartition(number=number, start=entry.start_lba * sector,
                          size=entry.sectors * sector, type_id=f"{entry.type_id:02X}",
                          bootable=entry.bootable, kind=kind)


def _mbr_layout(device: BlockDevice, sector: int, mbr: gpt.MbrSector,
                partitions: list[TablePartition]) -> PartitionTable:
    return PartitionTable(scheme="mbr", sector_size=sector, disk_size=device.size,
                          disk_id=f"{mbr.signature:08X}", partitions=tuple(partitions),
                          entry_count=4, entry_size=16)


# --- raw areas ---------------------------------------------------------------------------
def boot_areas(table: PartitionTable) -> list[tuple[str, int, int]]:
    """(name, offset, length) of the raw bytes a restore must bring back besides partitions.

    Only bytes 0..439 of LBA 0: the table and disk signature after them are written by
    write_table. On MBR disks boot loaders also live between LBA 1 and the first partition.
    """
    areas = [("mbr-boot-code", 0, gpt.BOOT_CODE_SIZE)]
    if table.scheme == "mbr" and table.partitions:
        first = min(part.start for part in table.partitions)
        gap_end = min(first, table.sector_size + MAX_POST_MBR_GAP)
        if gap_end > table.sector_size:
            areas.append(("post-mbr-gap", table.sector_size, gap_end - table.sector_size))
    return areas


# --- writing -----------------------------------------------------------------------------
def write_table(target: Path | BlockDevice, table: PartitionTable) -> None:
    """Write `table` to the whole disk or image file `target`, replacing what is there.

    `target` is a path, or the device the caller has open for writing (a restore holds
    the disk exclusively and writes partitions meanwhile; sgdisk and sfdisk open it
    without O_EXCL beside us). Given a path, the disk is opened exclusively here and the
    kernel is asked to re-read the table at the end.

    An image file has no sector size of its own: it gets the table's. Whether the layout
    fits (size, a disk's logical sector size) is the safety gate's rule
    (safety.layout_refusals), asked again here for callers that write a table alone. On a
    larger disk the GPT backup goes to the new end.
    """
    if not isinstance(target, BlockDevice):
        with BlockDevice.open(target, writable=True, sector_size=table.sector_size) as device:
            write_table(device, table)
            device.reread_partitions()
        return
    refusals = safety.layout_refusals(resolve_disk(target.path),
                                      table.end_of_last_partition, table.sector_size)
    if refusals:
        raise refusals[0]
    _clear_old_tables(target, table)
    with _writable_node(target.path, not target.is_block_device, table.sector_size) as node:
        if table.scheme == "gpt":
            sgdisk.write_gpt(node, table)
            for part in table.partitions:
                if not sgdisk.names_itself(part.name):
                    sfdisk.set_gpt_name(node, part.number, part.name)
        else:
            sfdisk.write_mbr(node, table)
    if table.scheme == "gpt":
        _restore_usable_range(target, table, target.size == table.disk_size)


def load_table_tools(table: PartitionTable) -> None:
    """Have the tools write_table(table) runs in memory before the disk gets busy.

    A restore writes the table beside the partitions' data: a tool whose program is read
    from the same disk then waits behind dozens of chunk-sized requests on every page it
    faults in. sgdisk took 2.1-2.6 s there instead of its usual 1.1 s (most of it its own
    one-second sleep), which ended the restore up to 0.6 s after the last chunk was
    written; loaded first, it ends long before.
    """
    if table.scheme != "gpt" or not all(sgdisk.names_itself(part.name)
                                        for part in table.partitions):
        sfdisk.load()
    if table.scheme == "gpt":
        sgdisk.load()


def _clear_old_tables(disk: BlockDevice, table: PartitionTable) -> None:
    """Zero what is outside the new partitions at both ends of the disk: old MBR, GPT and
    backup GPT. sgdisk gives up (exit 2) on some damaged tables, and a damaged table is why
    many disks come in for a restore; the boot areas are written back after the table."""
    first = min((part.start for part in table.partitions), default=CLEAR_LIMIT)
    last = max((part.end for part in table.partitions), default=0)
    head = min(first, CLEAR_LIMIT, disk.size)
    tail = max(last, disk.size - CLEAR_LIMIT, head)
    disk.write_at(0, bytes(head))
    disk.write_at(tail, bytes(disk.size - tail))
    disk.flush()


@contextmanager
def _writable_node(path: Path, image_file: bool, sector_size: int) -> Iterator[Path]:
    """sgdisk and sfdisk assume 512-byte sectors in image files: give them a loop device."""
    if image_file and sector_size != 512:
        with losetup.loop_device(path, sector_size=sector_size) as node:
            yield node
    else:
        yield path


def _restore_usable_range(disk: BlockDevice, table: PartitionTable, same_size: bool) -> None:
    """Put back first/last usable LBA where sgdisk's own choice differs from the original."""
    if not table.first_usable_lba:
        return
    sector = table.sector_size
    found = gpt.read_gpt(disk.read_at, sector, disk.size // sector)
    if found is None:
        raise UnsupportedLayoutError(f"sgdisk wrote no readable GPT to {disk.path}.",
                                     "See the log for sgdisk's output.")
    header = found[0]
    last = table.last_usable_lba if same_size else header.last_usable_lba
    if (header.first_usable_lba, header.last_usable_lba) == (table.first_usable_lba, last):
        return
    log.debug("restoring usable LBAs %d..%d on %s", table.first_usable_lba, last, disk.path)
    for lba in (header.current_lba, header.backup_lba):
        original = disk.read_at(lba * sector, sector)
        disk.write_at(lba * sector, gpt.with_usable_range(original, table.first_usable_lba,
                                                          last))
    disk.flush()


# --- comparing ---------------------------------------------------------------------------
def compare_tables(expected: PartitionTable, actual: PartitionTable) -> list[str]:
    """Every identifier that differs, as sentences a technician can act on ([] = equal).

    The last usable LBA follows the disk size (backup GPT at the end), so it is only
    compared when both disks have the same size.
    """
    if expected.scheme != actual.scheme:
        return [f"partition table type differs: expected {expected.scheme.upper()}, "
                f"disk has {actual.scheme.upper()}"]
    problems = _differences("disk", [
        ("sector size", expected.sector_size, actual.sector_size),
        ("disk GUID" if expected.scheme == "gpt" else "disk signature",
         expected.disk_id.upper(), actual.disk_id.upper()),
    ])
    if expected.scheme == "gpt":
        fields: list[tuple[str, object, object]] = [
            ("first usable LBA", expected.first_usable_lba, actual.first_usable_lba),
            ("partition entry count", expected.entry_count, actual.entry_count),
            ("partition entry size", expected.entry_size, actual.entry_size)]
        if expected.disk_size == actual.disk_size:
            fields.append(("last usable LBA", expected.last_usable_lba, actual.last_usable_lba))
        elif actual.last_usable_lba * actual.sector_size < max(
                (p.end - 1 for p in expected.partitions), default=0):
            problems.append(f"disk: last usable LBA {actual.last_usable_lba} ends before the "
                            "last partition")
        problems += _differences("disk", fields)
    return problems + _compare_partitions(expected, actual)


def _compare_partitions(expected: PartitionTable, actual: PartitionTable) -> list[str]:
    problems: list[str] = []
    have = {part.number: part for part in actual.partitions}
    for want in expected.partitions:
        got = have.pop(want.number, None)
        if got is None:
            problems.append(f"partition {want.number} is missing (expected at byte "
                            f"{want.start}, {human_size(want.size)})")
            continue
        problems += _differences(f"partition {want.number}", [
            ("start", want.start, got.start), ("size", want.size, got.size),
            ("type", want.type_id.upper(), got.type_id.upper()),
            ("GUID", want.guid.upper(), got.guid.upper()), ("name", want.name, got.name),
            ("attribute value", f"0x{want.attributes:016X}", f"0x{got.attributes:016X}"),
            ("active flag", want.bootable, got.bootable), ("kind", want.kind, got.kind)])
    for extra in sorted(have):
        problems.append(f"partition {extra} is on the disk but not in the image")
    return problems


def _differences(what: str, fields: list[tuple[str, object, object]]) -> list[str]:
    return [f"{what}: {label} differs: expected {want}, disk has {got}"
            for label, want, got in fields if want != got]
