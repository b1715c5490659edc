"""FAT12/16/32 from the BIOS parameter block and the first FAT: which bytes are in use.

The reserved sectors (boot sector, FAT32 FSInfo and backup boot sector), the FATs and the
FAT12/16 root directory are always used; in the data area, every cluster whose FAT entry is
non-zero (allocated, end of chain, or marked bad) is used, as partclone.fat counts them.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Literal

from recovery.errors import UnsupportedLayoutError
from recovery.model.extents import Extent, normalise, total
from recovery.sys.blockdev import BlockDevice

FatType = Literal["fat12", "fat16", "fat32"]
_VALID_SECTOR_SIZES = (512, 1024, 2048, 4096)
_NONZERO = re.compile(rb"[^\x00]+")
_LOW_NIBBLE = bytes(value & 0x0F for value in range(256))


@dataclass(frozen=True)
class FatBootSector:
    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sectors: int
    fat_count: int
    root_entries: int
    total_sectors: int
    fat_sectors: int
    serial: int
    label: str
    fat_type: FatType
    root_cluster: int = 0

    @property
    def cluster_size(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster

    @property
    def fat_offset(self) -> int:
        return self.reserved_sectors * self.bytes_per_sector

    @property
    def data_offset(self) -> int:
        """First byte of cluster 2: everything before it is file-system metadata."""
        root_bytes = self.root_entries * 32
        root_sectors = -(-root_bytes // self.bytes_per_sector)
        sectors = self.reserved_sectors + self.fat_count * self.fat_sectors + root_sectors
        return sectors * self.bytes_per_sector

    @property
    def clusters(self) -> int:
        data_sectors = self.total_sectors - self.data_offset // self.bytes_per_sector
        return max(0, data_sectors // self.sectors_per_cluster)

    @property
    def serial_text(self) -> str:
        return f"{self.serial >> 16:04X}-{self.serial & 0xFFFF:04X}"


@dataclass(frozen=True)
class FatVolume:
    boot: FatBootSector
    used: list[Extent]
    label: str  # the root directory's label (what Windows shows), else the boot sector's

    @property
    def used_bytes(self) -> int:
        return total(self.used)


def looks_like_fat(boot_sector: bytes) -> bool:
    """A sane BPB and the 0x55AA signature; no OEM id or type string is required."""
    if len(boot_sector) < 512 or boot_sector[510:512] != b"\x55\xaa":
        return False
    if boot_sector[0] not in (0xEB, 0xE9):
        return False
    bps, spc, reserved, fats = struct.unpack_from("<HBHB", boot_sector, 0x0B)
    return (bps in _VALID_SECTOR_SIZES and spc in (1, 2, 4, 8, 16, 32, 64, 128)
            and reserved >= 1 and fats in (1, 2) and boot_sector[3:11] != b"NTFS    "
            and boot_sector[3:11] != b"EXFAT   ")


def parse_boot_sector(data: bytes, where: str = "volume") -> FatBootSector:
    if not looks_like_fat(data):
        raise UnsupportedLayoutError(f"The {where} has no FAT boot sector.",
                                     "Check the partition offsets; the volume may be damaged.")
    bps, spc, reserved, fats, root_entries, total16 = struct.unpack_from("<HBHBHH", data, 0x0B)
    fat16_sectors = struct.unpack_from("<H", data, 0x16)[0]
    total32 = struct.unpack_from("<I", data, 0x20)[0]
    fat32_sectors = struct.unpack_from("<I", data, 0x24)[0]
    fat_sectors = fat16_sectors or fat32_sectors
    total = total16 or total32
    probe = FatBootSector(bps, spc, reserved, fats, root_entries, total, fat_sectors, 0, "",
                          "fat12")
    if fat_sectors == 0 or probe.clusters == 0:
        raise UnsupportedLayoutError(f"The FAT boot sector of the {where} is damaged.",
                                     "Repair it with fsck.fat or capture it as raw data.")
    # The cluster count alone decides the FAT type (Microsoft's FAT specification).
    fat_type: FatType = ("fat12" if probe.clusters < 4085 else
                         "fat16" if probe.clusters < 65525 else "fat32")
    extended = 0x40 if fat_type == "fat32" else 0x24  # extended BPB: drive, flags, sig, ...
    serial = label_bytes = None
    if data[extended + 2] in (0x28, 0x29):
        serial = struct.unpack_from("<I", data, extended + 3)[0]
        label_bytes = data[extended + 7: extended + 18] if data[extended + 2] == 0x29 else None
    label = (label_bytes or b"").decode("cp437").rstrip()
    if label == "NO NAME":
        label = ""
    root_cluster = struct.unpack_from("<I", data, 0x2C)[0] if fat_type == "fat32" else 0
    return FatBootSector(bps, spc, reserved, fats, root_entries, total, fat_sectors,
                         serial or 0, label, fat_type, root_cluster)


def cluster_in_use(fat: bytes, fat_type: FatType, clusters: int) -> list[tuple[int, int]]:
    """Runs (first cluster index from 0 = cluster 2, count) of non-zero FAT entries."""
    # A FAT shorter than its cluster count (damaged BPB) reads as free past its end.
    fat = fat.ljust(4 * (clusters + 2), b"\0")
    if fat_type == "fat12":
        flags = bytes(_fat12_entry(fat, i) != 0 for i in range(2, clusters + 2))
    else:
        width = 4 if fat_type == "fat32" else 2
        table = fat[2 * width: width * (clusters + 2)]
        lanes = [table[lane::width] for lane in range(width)]
        if fat_type == "fat32":  # 28-bit entries: the top nibble is reserved
            lanes[3] = lanes[3].translate(_LOW_NIBBLE)
        flags = _or_bytes(lanes)
    return [(m.start(), m.end() - m.start()) for m in _NONZERO.finditer(flags)]


def _fat12_entry(fat: bytes, index: int) -> int:
    pair = fat[index * 3 // 2] | fat[index * 3 // 2 + 1] << 8
    return pair >> 4 if index & 1 else pair & 0x0FFF


def _or_bytes(lanes: list[bytes]) -> bytes:
    """Byte-wise OR of equal-length byte strings, done by big-integer OR at C speed."""
    combined = 0
    for lane in lanes:
        combined |= int.from_bytes(lane, "big")
    return combined.to_bytes(len(lanes[0]), "big")


def read_fat(device: BlockDevice, offset: int, size: int) -> FatVolume:
    """Boot sector and used extents (relative to the volume) of the FAT volume at `offset`."""
    where = f"FAT volume at byte {offset} of {device.path}"
    boot = parse_boot_sector(device.read_at(offset, 512), where)
    if boot.data_offset + boot.clusters * boot.cluster_size > size:
        raise UnsupportedLayoutError(f"The {where} claims to be larger than its partition.",
                                     "Check the partition table; the volume may be truncated.")
    fat = device.read_at(offset + boot.fat_offset, boot.fat_sectors * boot.bytes_per_sector)
    # Sectors after the last whole cluster belong to no file, but partclone copies them
    # and so do we: they cost less than a cluster and keep the copy byte-identical.
    data_end = boot.data_offset + boot.clusters * boot.cluster_size
    volume_end = min(boot.total_sectors * boot.bytes_per_sector, size)
    used: list[Extent] = [(0, boot.data_offset), (data_end, volume_end - data_end)]
    for first, count in cluster_in_use(fat, boot.fat_type, boot.clusters):
        used.append((boot.data_offset + first * boot.cluster_size, count * boot.cluster_size))
    return FatVolume(boot, normalise(used), root_label(device, offset, boot) or boot.label)


def root_label(device: BlockDevice, offset: int, boot: FatBootSector) -> str:
    """The volume-label entry of the root directory (first cluster only for FAT32)."""
    if boot.fat_type == "fat32":
        if not 2 <= boot.root_cluster < boot.clusters + 2:
            return ""
        start = boot.data_offset + (boot.root_cluster - 2) * boot.cluster_size
        length = boot.cluster_size
    else:
        start = boot.fat_offset + boot.fat_count * boot.fat_sectors * boot.bytes_per_sector
        length = boot.root_entries * 32
    directory = device.read_at(offset + start, length)
    for position in range(0, len(directory) - 31, 32):
        entry = directory[position: position + 32]
        if entry[0] == 0x00:
            break
        attributes = entry[11]
        if entry[0] != 0xE5 and attributes & 0x08 and attributes & 0x0F != 0x0F:
            return entry[:11].decode("cp437").rstrip()
    return ""
