"""NTFS, read straight from the volume: boot sector, $Bitmap (used clusters), $Volume.

Only the handful of structures a block-level imager needs (layout: libfsntfs's NTFS
documentation). The used extents are what ntfsclone/partclone copy: every cluster set in
$Bitmap plus the backup boot sector, which sits in the volume's last sector beyond the last
cluster, so a restore gives back a byte-identical file system.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from recovery.errors import UnsupportedLayoutError
from recovery.model.extents import Extent, from_bitmap, normalise, total
from recovery.sys.blockdev import BlockDevice

NTFS_OEM_ID = b"NTFS    "
FIXUP_STRIDE = 512  # update sequence arrays protect every 512 bytes, whatever the sector size
MFT_RECORD_VOLUME = 3
MFT_RECORD_BITMAP = 6
ATTR_ATTRIBUTE_LIST = 0x20
ATTR_VOLUME_NAME = 0x60
ATTR_VOLUME_INFORMATION = 0x70
ATTR_DATA = 0x80
ATTR_END = 0xFFFFFFFF
VOLUME_IS_DIRTY = 0x0001
_READ_BLOCK = 16 * 1024 * 1024


@dataclass(frozen=True)
class NtfsBootSector:
    oem_id: str
    bytes_per_sector: int
    sectors_per_cluster: int
    total_sectors: int
    mft_lcn: int
    mft_mirror_lcn: int
    mft_record_size: int
    serial: int

    @property
    def cluster_size(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster

    @property
    def clusters(self) -> int:
        return self.total_sectors // self.sectors_per_cluster

    @property
    def backup_boot_offset(self) -> int:
        """The backup boot sector: the sector right after the last one the volume counts."""
        return self.total_sectors * self.bytes_per_sector

    @property
    def serial_text(self) -> str:
        """As Windows prints it in `vol`: 1234-ABCD (the low 32 bits)."""
        low = self.serial & 0xFFFFFFFF
        return f"{low >> 16:04X}-{low & 0xFFFF:04X}"


@dataclass(frozen=True)
class Attribute:
    """One attribute of an MFT record: resident value or non-resident runlist."""

    type: int
    name: str
    resident: bool
    value: bytes  # the resident value, or the raw runlist when non-resident
    data_size: int


@dataclass(frozen=True)
class NtfsVolume:
    boot: NtfsBootSector
    label: str
    dirty: bool
    version: str
    used: list[Extent]

    @property
    def used_bytes(self) -> int:
        return total(self.used)


def is_ntfs(boot_sector: bytes) -> bool:
    return boot_sector[3:11] == NTFS_OEM_ID


def parse_boot_sector(data: bytes, where: str = "volume") -> NtfsBootSector:
    """Parse the NTFS boot sector; `where` names the volume in errors."""
    if len(data) < 512 or not is_ntfs(data):
        raise UnsupportedLayoutError(f"The {where} has no NTFS boot sector.",
                                     "Check the partition offsets; the volume may be damaged.")
    bytes_per_sector, spc_raw = struct.unpack_from("<HB", data, 0x0B)
    total_sectors, mft_lcn, mirror_lcn = struct.unpack_from("<qqq", data, 0x28)
    record_raw = struct.unpack_from("<b", data, 0x40)[0]
    serial = struct.unpack_from("<Q", data, 0x48)[0]
    # Cluster sizes above 64 KiB are stored as a negative power of two.
    sectors_per_cluster = spc_raw if spc_raw <= 0x80 else 1 << (256 - spc_raw)
    if bytes_per_sector not in (256, 512, 1024, 2048, 4096) or sectors_per_cluster == 0:
        raise UnsupportedLayoutError(
            f"The NTFS boot sector of the {where} is damaged ({bytes_per_sector} bytes per "
            f"sector, {sectors_per_cluster} sectors per cluster).",
            "Run chkdsk /f from Windows, or capture the partition as raw data.")
    cluster_size = bytes_per_sector * sectors_per_cluster
    record_size = record_raw * cluster_size if record_raw > 0 else 1 << -record_raw
    return NtfsBootSector(data[3:11].decode("ascii", "replace"), bytes_per_sector,
                          sectors_per_cluster, total_sectors, mft_lcn, mirror_lcn, record_size,
                          serial)


def apply_fixups(record: bytes, where: str) -> bytes:
    """Undo the update-sequence protection of an MFT record (or index block)."""
    usa_offset, usa_count = struct.unpack_from("<HH", record, 4)
    if usa_count == 0 or usa_offset + 2 * usa_count > len(record):
        raise UnsupportedLayoutError(f"{where} has a damaged update sequence array.",
                                     "Run chkdsk /f from Windows, then capture again.")
    fixed = bytearray(record)
    check = record[usa_offset: usa_offset + 2]
    for index in range(1, usa_count):
        end = index * FIXUP_STRIDE
        if end > len(record):
            break
        if record[end - 2: end] != check:
            raise UnsupportedLayoutError(f"{where} is torn (update sequence mismatch).",
                                         "Run chkdsk /f from Windows, then capture again.")
        fixed[end - 2: end] = record[usa_offset + 2 * index: usa_offset + 2 * index + 2]
    return bytes(fixed)


def parse_attributes(record: bytes, where: str) -> list[Attribute]:
    """The attributes of a fixed-up MFT record, in on-disk order."""
    if record[:4] != b"FILE":
        raise UnsupportedLayoutError(f"{where} is not a valid MFT record.",
                                     "Run chkdsk /f from Windows, then capture again.")
    attributes: list[Attribute] = []
    position = struct.unpack_from("<H", record, 0x14)[0]
    while position + 8 <= len(record):
        attr_type, length = struct.unpack_from("<II", record, position)
        if attr_type == ATTR_END or length < 16 or position + length > len(record):
            break
        attributes.append(_parse_attribute(record[position: position + length]))
        position += length
    return attributes


def _parse_attribute(raw: bytes) -> Attribute:
    attr_type, _length, non_resident, name_length, name_offset = struct.unpack_from(
        "<IIBBH", raw, 0)
    name = raw[name_offset: name_offset + 2 * name_length].decode("utf-16-le", "replace")
    if not non_resident:
        value_length, value_offset = struct.unpack_from("<IH", raw, 0x10)
        value = raw[value_offset: value_offset + value_length]
        return Attribute(attr_type, name, True, value, value_length)
    runlist_offset = struct.unpack_from("<H", raw, 0x20)[0]
    data_size = struct.unpack_from("<q", raw, 0x30)[0]
    return Attribute(attr_type, name, False, raw[runlist_offset:], data_size)


def decode_runlist(runlist: bytes) -> list[tuple[int | None, int]]:
    """Data runs as (first LCN or None for a sparse run, cluster count)."""
    runs: list[tuple[int | None, int]] = []
    position, lcn = 0, 0
    while position < len(runlist) and runlist[position] != 0:
        header = runlist[position]
        length_size, offset_size = header & 0x0F, header >> 4
        position += 1
        count = int.from_bytes(runlist[position: position + length_size], "little")
        position += length_size
        if offset_size == 0:
            runs.append((None, count))
            continue
        lcn += int.from_bytes(runlist[position: position + offset_size], "little", signed=True)
        position += offset_size
        runs.append((lcn, count))
    return runs


class NtfsReader:
    """Reads NTFS structures of the volume at `offset` in `device`."""

    def __init__(self, device: BlockDevice, offset: int, size: int) -> None:
        self.device = device
        self.offset = offset
        self.size = size
        self.where = f"NTFS volume at byte {offset} of {device.path}"
        self.boot = parse_boot_sector(device.read_at(offset, 512), self.where)
        if self.boot.clusters * self.boot.cluster_size > size:
            raise UnsupportedLayoutError(
                f"The {self.where} claims {self.boot.total_sectors * self.boot.bytes_per_sector}"
                f" bytes but its partition has only {size}.",
                "The partition table or the volume is damaged; check the partition sizes.")

    def mft_record(self, number: int) -> bytes:
        """A fixed-up record from the start of $MFT (records 0-15 never move)."""
        size = self.boot.mft_record_size
        start = self.boot.mft_lcn * self.boot.cluster_size + number * size
        if start + size > self.size:
            raise UnsupportedLayoutError(f"The $MFT of the {self.where} lies outside it.",
                                         "The partition may be truncated; check its size.")
        raw = self.device.read_at(self.offset + start, size)
        return apply_fixups(raw, f"MFT record {number} of the {self.where}")

    def attributes(self, number: int) -> list[Attribute]:
        return parse_attributes(self.mft_record(number), f"MFT record {number} of the "
                                                         f"{self.where}")

    def read_attribute(self, attribute: Attribute, limit: int) -> bytes:
        """The first `limit` bytes of an attribute's value (sparse runs read as zeros)."""
        if attribute.resident:
            return attribute.value[:limit]
        cluster = self.boot.cluster_size
        parts: list[bytes] = []
        remaining = min(limit, attribute.data_size)
        for lcn, count in decode_runlist(attribute.value):
            if remaining <= 0:
                break
            length = min(count * cluster, remaining)
            parts.append(b"\0" * length if lcn is None else self._read_run(lcn, length))
            remaining -= length
        return b"".join(parts)

    def _read_run(self, lcn: int, length: int) -> bytes:
        start = lcn * self.boot.cluster_size
        if start < 0 or start + length > self.size:
            raise UnsupportedLayoutError(f"A data run of the {self.where} points outside it.",
                                         "Run chkdsk /f from Windows, then capture again.")
        parts = [self.device.read_at(self.offset + start + done, min(_READ_BLOCK, length - done))
                 for done in range(0, length, _READ_BLOCK)]
        return b"".join(parts)

    def bitmap(self) -> bytes:
        """$Bitmap's data: one bit per cluster, LSB first."""
        attributes = self.attributes(MFT_RECORD_BITMAP)
        data = [a for a in attributes if a.type == ATTR_DATA and not a.name]
        if not data:
            hint = (" (its attributes spill into other records)"
                    if any(a.type == ATTR_ATTRIBUTE_LIST for a in attributes) else "")
            raise UnsupportedLayoutError(f"Cannot find $Bitmap's data on the {self.where}{hint}.",
                                         "Capture this partition as raw data instead.")
        needed = (self.boot.clusters + 7) // 8
        bitmap = self.read_attribute(data[0], needed)
        if len(bitmap) < needed:
            raise UnsupportedLayoutError(f"$Bitmap of the {self.where} is shorter than the "
                                         "volume.", "Run chkdsk /f from Windows, then capture "
                                         "again.")
        return bitmap

    def used_extents(self) -> list[Extent]:
        """Byte extents (relative to the volume) that a byte-identical copy needs."""
        cluster = self.boot.cluster_size
        used = from_bitmap(self.bitmap(), cluster, self.boot.clusters)
        backup = self.boot.backup_boot_offset
        if backup + self.boot.bytes_per_sector <= self.size:
            used.append((backup, self.boot.bytes_per_sector))
        return normalise(used)

    def volume_state(self) -> tuple[str, bool, str]:
        """(label, dirty, version) from $Volume."""
        label, dirty, version = "", False, ""
        for attribute in self.attributes(MFT_RECORD_VOLUME):
            if attribute.type == ATTR_VOLUME_NAME and attribute.resident:
                label = attribute.value.decode("utf-16-le", "replace")
            elif attribute.type == ATTR_VOLUME_INFORMATION and attribute.resident:
                major, minor, flags = struct.unpack_from("<BBH", attribute.value, 8)
                dirty = bool(flags & VOLUME_IS_DIRTY)
                version = f"{major}.{minor}"
        return label, dirty, version


def volume_info_offset(device: BlockDevice, offset: int, size: int) -> int:
    """Absolute byte offset of $Volume's flags field (for tools and tests that set it)."""
    reader = NtfsReader(device, offset, size)
    record = reader.mft_record(MFT_RECORD_VOLUME)
    position: int = struct.unpack_from("<H", record, 0x14)[0]
    while position + 8 <= len(record):
        attr_type, length = struct.unpack_from("<II", record, position)
        if attr_type == ATTR_END or length < 16:
            break
        if attr_type == ATTR_VOLUME_INFORMATION:
            value_offset: int = struct.unpack_from("<H", record, position + 0x14)[0]
            record_start = reader.boot.mft_lcn * reader.boot.cluster_size
            record_start += MFT_RECORD_VOLUME * reader.boot.mft_record_size
            return offset + record_start + position + value_offset + 10
        position += length
    raise UnsupportedLayoutError(f"$Volume of the {reader.where} has no volume information.",
                                 "Run chkdsk /f from Windows.")


def read_ntfs(device: BlockDevice, offset: int, size: int) -> NtfsVolume:
    """Boot sector, label, dirty flag and used extents of the NTFS volume at `offset`."""
    reader = NtfsReader(device, offset, size)
    label, dirty, version = reader.volume_state()
    return NtfsVolume(reader.boot, label, dirty, version, reader.used_extents())
