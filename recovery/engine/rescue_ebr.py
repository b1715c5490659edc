"""The EBR chain of an MBR disk's extended partition on a failing disk (a rescue capture).

Each logical partition's place and size, and the link to the next EBR, live in one sector
(its EBR); libparted stops at the first that does not read (exit 11) and so would a plain
walk of the chain. A rescue reads each EBR past bad sectors and, when one does not read,
locates what it described the way testdisk does, but only where partitioning tools put
things (no scan of the disk, which on a dying one costs hours): the logical partition's
NTFS, FAT or exFAT boot sector 1 MiB (Windows Vista and later, parted, fdisk) or 63
sectors (older tools) after the EBR gives its file system's size, and the next EBR sits
right after that file system or at the next MiB boundary. The partition is then rebuilt
from those two, and the chain goes on from the next EBR. What cannot be located is said,
with what to do.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from recovery.errors import UnsupportedLayoutError
from recovery.fs import fat, ntfs
from recovery.model import gpt
from recovery.units import MiB, align_up

# From an EBR to its logical partition (see above): 1 MiB, or 63 sectors.
GAP_BYTES, GAP_SECTORS = MiB, 63


@dataclass(frozen=True)
class LostEbr:
    """An EBR that did not read: the logical partition it described (`number`, as the
    kernel and libparted number it), rebuilt or None, and the next EBR found (LBA)."""

    offset: int  # disk byte offset of the EBR sector
    number: int
    rebuilt: gpt.MbrEntry | None
    found_from: str  # "its NTFS boot sector at sector S" when rebuilt
    next_lba: int | None

    def what(self, sector: int) -> str:
        head = (f"the EBR of logical partition {self.number} (its place and size, and the "
                "link to the next EBR): ")
        if self.rebuilt is None:
            return head + (f"no boot sector was found where logical partition {self.number} "
                           "would start, so it and any logical partitions after it could "
                           "not be located and are not in this image")
        entry = self.rebuilt
        rebuilt = (f"partition {self.number} was rebuilt from {self.found_from} (start "
                   f"sector {entry.start_lba}, {entry.sectors} sectors, type "
                   f"{entry.type_id:02X})")
        if self.next_lba is None:
            return head + rebuilt + (" as large as its file system; no EBR follows it, so "
                                     "logical partitions after it, if the disk had any, "
                                     "could not be located")
        return head + rebuilt + (f" and the next EBR at sector {self.next_lba}, from which "
                                 "the logical partitions after it were read")

    def restore(self) -> str:
        if self.rebuilt is not None and self.next_lba is not None:
            return "a new EBR is written from the table, with the rebuilt entry"
        return ("a new EBR is written for the partitions found; a lost logical partition "
                "is not in the image: to save it, copy the whole disk with GNU ddrescue "
                "onto a healthy disk, let testdisk find the lost partitions on the copy and "
                "write them into its table, then capture the copy")


ReadAt = Callable[[int, int], bytes]
Unreadable = Callable[[int, int], bool]  # (offset, length): did any of it fail to read?


def rescue_logical_entries(read_at: ReadAt, unreadable: Unreadable, sector: int,
                           extended: gpt.MbrEntry) -> tuple[list[gpt.MbrEntry], list[LostEbr]]:
    """The logical partitions of `extended` (numbered 5, 6, ... in chain order, a lost one
    keeping its number) and the EBRs that did not read. `read_at` gives zeros for bytes
    that do not read, `unreadable` says which."""
    logical: list[gpt.MbrEntry] = []
    lost: list[LostEbr] = []
    ebr_lba: int | None = extended.start_lba
    seen: set[int] = set()
    while ebr_lba is not None and ebr_lba not in seen and len(seen) < gpt.MAX_LOGICAL:
        seen.add(ebr_lba)
        number = 5 + len(logical) + sum(1 for item in lost if item.rebuilt is None)
        data = read_at(ebr_lba * sector, sector)
        if unreadable(ebr_lba * sector, sector):
            found = _locate(read_at, sector, extended, ebr_lba, number)
            lost.append(found)
            logical += [found.rebuilt] if found.rebuilt else []
            ebr_lba = found.next_lba
            continue
        ebr = gpt.parse_ebr(data, ebr_lba, extended, number)
        if ebr is None:
            break
        logical += [ebr.logical] if ebr.logical else []
        ebr_lba = ebr.next_lba
    return logical, lost


def _locate(read_at: ReadAt, sector: int, extended: gpt.MbrEntry, ebr_lba: int,
            number: int) -> LostEbr:
    """What the unreadable EBR at `ebr_lba` described, from the boot sector after it."""
    end = (extended.start_lba + extended.sectors) * sector
    for gap in (GAP_BYTES, GAP_SECTORS * sector):
        start = ebr_lba * sector + gap
        if start + sector > end:
            continue
        found = file_system_extent(read_at(start, 512))
        if found is None:
            continue
        name, size, type_id = found
        next_lba = _next_ebr(read_at, sector, extended, start + size)
        length = next_lba * sector - start if next_lba is not None else \
            min(align_up(size, sector), end - start)
        entry = gpt.MbrEntry(number, False, type_id, start // sector, length // sector)
        return LostEbr(ebr_lba * sector, number, entry,
                       f"its {name} boot sector at sector {start // sector}", next_lba)
    return LostEbr(ebr_lba * sector, number, None, "", None)


def file_system_extent(boot: bytes) -> tuple[str, int, int] | None:
    """(name, bytes, MBR type) of the file system whose boot sector `boot` is, or None."""
    if ntfs.is_ntfs(boot):
        bytes_per_sector, = struct.unpack_from("<H", boot, 0x0B)
        total, = struct.unpack_from("<q", boot, 0x28)
        if bytes_per_sector in (512, 1024, 2048, 4096) and total > 0:
            # The backup boot sector follows the sectors the volume counts.
            return "NTFS", (total + 1) * bytes_per_sector, 0x07
    if gpt.looks_like_boot_sector(boot) == "exFAT" and boot[510:512] == b"\x55\xaa":
        # exFAT's boot sector: VolumeLength (sectors) at 0x48, BytesPerSectorShift at 0x6C.
        length, = struct.unpack_from("<Q", boot, 0x48)
        shift = boot[0x6C]
        if 9 <= shift <= 12 and length > 0:
            return "exFAT", length << shift, 0x07
        return None
    if fat.looks_like_fat(boot):
        try:
            bpb = fat.parse_boot_sector(boot)
        except UnsupportedLayoutError:  # a damaged BPB: its size is no guide
            return None
        size = bpb.total_sectors * bpb.bytes_per_sector
        return bpb.fat_type.upper(), size, 0x0C if bpb.fat_type == "fat32" else 0x0E
    return None


def _next_ebr(read_at: ReadAt, sector: int, extended: gpt.MbrEntry, after: int) -> int | None:
    """The LBA of the first EBR from byte `after` to the MiB boundary after the next one:
    a sector that reads as an EBR whose partition and link stay inside `extended`."""
    after = align_up(after, sector)
    end = min(align_up(after, MiB) + MiB, (extended.start_lba + extended.sectors) * sector)
    if end <= after:
        return None
    window = read_at(after, end - after)
    for at in range(0, len(window), sector):
        lba = (after + at) // sector
        if _looks_like_ebr(window[at: at + sector], lba, extended):
            return lba
    return None


def _looks_like_ebr(data: bytes, lba: int, extended: gpt.MbrEntry) -> bool:
    """An EBR holds no boot code and only two entries: a boot sector, whose code fills
    those bytes, does not pass for one."""
    if any(data[:gpt.PARTITION_ENTRIES_OFFSET]) or any(data[gpt.PARTITION_ENTRIES_OFFSET + 32:
                                                            510]):
        return False
    ebr = gpt.parse_ebr(data, lba, extended, 0)
    if ebr is None or ebr.logical is None:
        return False
    end = extended.start_lba + extended.sectors
    inside = lba < ebr.logical.start_lba and ebr.logical.start_lba + ebr.logical.sectors <= end
    return inside and (ebr.next_lba is None or lba < ebr.next_lba < end)
