"""Which NTFS structures and files own given byte ranges of a volume.

Two uses in a rescue capture: `important_ranges` says where a volume keeps what must be
saved first (boot sector, $MFT, $MFTMirr, $LogFile, $Bitmap, the registry hives), read from
the disk before the data; `map_damage` names what lived in the bytes a rescue could not
read, read from the captured image (never from the failing disk again): a file's data, an
MFT record (the file it described, named from its parent directory's index, since the
record itself is gone), NTFS metadata, or nothing (free space).

The MFT walk reads every record once (layout: libfsntfs's NTFS documentation); records
that do not parse, such as the zeros an unreadable record was stored as, are skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyfsntfs

from recovery.errors import RecoveryError
from recovery.fs.ntfs import (
    ATTR_DATA,
    NtfsBootSector,
    NtfsReader,
    apply_fixups,
    decode_runlist,
    parse_attributes,
    parse_boot_sector,
)
from recovery.model.extents import Extent, clip, normalise, total
from recovery.model.manifest import DamagedItem, DamageKind
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice

Reader = Callable[[int, int], bytes]  # (offset in the volume, length) -> bytes
# (path, is a registry hive) -> which shadow copies hold a readable copy, in words ("" when
# the volume has none): recovery.registry.shadowcopies, kept out of this layer.
CopyNote = Callable[[str, bool], str]
ATTR_FILE_NAME = 0x30
ATTR_INDEX_ROOT = 0x90
ATTR_INDEX_ALLOCATION = 0xA0
ROOT_RECORD = 5
FIRST_USER_RECORD = 16  # records 0-15 are the file system's own
REFERENCE_MASK = (1 << 48) - 1
CONFIG_DIR = "\\Windows\\System32\\config"
HIVE_NAMES = ("SYSTEM", "SOFTWARE", "SAM", "SECURITY", "DEFAULT")
HIVE_PATHS = tuple(f"{CONFIG_DIR}\\{name}" for name in HIVE_NAMES)
VSS_STORE = "{3808876b-c176-4e48-b7ae-04046e6cc752}"  # the name of every shadow copy store
_METADATA_NAMES = {0: "$MFT", 1: "$MFTMirr", 2: "$LogFile", 3: "$Volume", 4: "$AttrDef",
                   5: "root directory", 6: "$Bitmap", 7: "$Boot", 8: "$BadClus",
                   9: "$Secure", 10: "$UpCase", 11: "$Extend"}
_WALK_BLOCK = 4 * 1024 * 1024


def important_ranges(device: BlockDevice, offset: int, size: int) -> list[Extent]:
    """Volume-relative ranges to read first, most important first; what cannot be found
    (a damaged or unreadable volume) is left out, never an error."""
    found: list[Extent] = [(0, 512)]
    try:
        reader = NtfsReader(device, offset, size)
        cluster = reader.boot.cluster_size
        for record in (0, 1, 2, 6):  # $MFT, $MFTMirr, $LogFile, $Bitmap
            for attribute in reader.attributes(record):
                if attribute.type == ATTR_DATA and not attribute.name and \
                        not attribute.resident:
                    found += _runs_to_extents(attribute.value, cluster)
    except RecoveryError:
        return found
    found += _hive_extents(device, offset, size)
    return found


def _hive_extents(device: BlockDevice, offset: int, size: int) -> list[Extent]:
    volume = pyfsntfs.volume()
    out: list[Extent] = []
    try:
        volume.open_file_object(DeviceSlice(device, offset, size))
        for path in HIVE_PATHS:
            entry = volume.get_file_entry_by_path(path)
            if entry is not None:
                out += [entry.get_extent(i)[:2] for i in range(entry.get_number_of_extents())]
    except (OSError, RecoveryError):
        pass
    finally:
        volume.close()
    return out


def _runs_to_extents(runlist: bytes, cluster: int) -> list[Extent]:
    return [(lcn * cluster, count * cluster) for lcn, count in decode_runlist(runlist)
            if lcn is not None]


# --- what owned the damaged bytes ---------------------------------------------------------
@dataclass
class _Record:
    number: int
    name: str = ""
    parent: int = -1
    directory: bool = False
    size: int = 0


@dataclass
class _Owner:
    start: int  # volume bytes
    end: int
    record: int
    attr_type: int
    attr_name: str


@dataclass
class _Volume:
    boot: NtfsBootSector
    records: dict[int, _Record] = field(default_factory=dict)
    owners: list[_Owner] = field(default_factory=list)
    mft: list[Extent] = field(default_factory=list)  # $MFT's data, in VCN order
    # record number -> (parent, name, size) as its directory's index lists it
    indexed: dict[int, tuple[int, str, int]] = field(default_factory=dict)

    def find(self, path: str) -> int | None:
        """The record of the file at `path` (case-insensitive), if the walk saw it."""
        name = path.rpartition("\\")[2].lower()
        for number, record in self.records.items():
            if record.name.lower() == name and self.path(number).lower() == path.lower():
                return number
        return None

    def path(self, number: int) -> str:
        parts: list[str] = []
        seen: set[int] = set()
        while number != ROOT_RECORD and number not in seen and len(parts) < 64:
            seen.add(number)
            record = self.records.get(number)
            if record is not None and record.name:
                parts.append(record.name)
                number = record.parent
            elif number in self.indexed:
                parent, name, _ = self.indexed[number]
                parts.append(name)
                number = parent
            else:
                parts.append(f"<record {number}>")
                break
        return "\\" + "\\".join(reversed(parts))


def map_damage(read: Reader, size: int, damaged: list[Extent],
               copies: CopyNote | None = None) -> list[DamagedItem]:
    """What lived in `damaged` (volume-relative ranges) of the NTFS volume `read` gives;
    `copies` says for a lost file which shadow copies can give it back."""
    try:
        volume = _walk(read, size)
    except (RecoveryError, struct.error, ValueError) as exc:
        return [DamagedItem("unknown", "", total(damaged), damaged[0][0],
                            f"the file system could not be read to tell ({exc})")]
    found: dict[tuple[DamageKind, str], list[int]] = {}  # -> [bytes lost, first offset]
    for start, length in normalise(damaged):
        for kind, path, piece in _owners_of(volume, start, start + length):
            entry = found.setdefault((kind, path), [0, piece[0]])
            entry[0] += piece[1]
            entry[1] = min(entry[1], piece[0])
    return [DamagedItem(kind, path, lost, first,
                        "; ".join(filter(None, (_note(kind), _copies(volume, read, kind, path,
                                                                     damaged, copies)))))
            for (kind, path), (lost, first) in sorted(found.items(), key=lambda i: i[1][1])]


def _copies(volume: _Volume, read: Reader, kind: DamageKind, path: str,
            damaged: list[Extent], copies: CopyNote | None) -> str:
    folder, _, name = path.rpartition("\\")
    if folder.lower() == CONFIG_DIR.lower() and name.upper() in HIVE_NAMES:
        return _hive_copies(volume, read, path, damaged, copies)
    if copies is None or kind not in ("file-data", "mft-record"):
        return ""
    return copies(path, False)


def _hive_copies(volume: _Volume, read: Reader, path: str, damaged: list[Extent],
                 copies: CopyNote | None) -> str:
    """For a registry hive: whether a restore point on the volume holds a good copy of it
    (RegBack and, through `copies`, each shadow copy, read from the captured data)."""
    name = path.rpartition("\\")[2]
    found = []
    regback = volume.find(f"{CONFIG_DIR}\\RegBack\\{name}")
    if regback is not None:
        extents = [(o.start, o.end - o.start) for o in volume.owners
                   if o.record == regback and o.attr_type == ATTR_DATA and not o.attr_name]
        whole = bool(extents) and not any(clip(normalise(damaged), s, s + n)
                                          for s, n in extents)
        good = whole and read(extents[0][0], 4) == b"regf"
        found.append(f"RegBack holds {'a good' if good else 'a damaged or empty'} copy")
    shadows = copies(path, True) if copies is not None else ""
    if shadows:
        found.append(shadows)
    elif copies is None and any(VSS_STORE in record.name.lower()
                                for record in volume.records.values()):
        found.append("the volume has shadow copies, which may hold older copies")
    if not found:
        return "no RegBack copy and no shadow copy of this hive on the volume"
    return ("; ".join(found) + ": after restoring, the restore points of the Windows "
            "volume list them and a rollback puts one back")


def _note(kind: DamageKind) -> str:
    return {"file-data": "part of the file's data is zeros in the image",
            "mft-record": "the file's MFT record is lost: Windows cannot find the file "
                          "(chkdsk will remove it); its data may still be in the image",
            "ntfs-metadata": "NTFS's own data: run chkdsk /f after restoring",
            "free-space": "nothing lost (not in use by any file)",
            "unknown": ""}[kind]


def _owners_of(volume: _Volume, start: int, end: int
               ) -> Iterator[tuple[DamageKind, str, Extent]]:
    covered: list[Extent] = []
    for owner in volume.owners:
        if owner.start >= end:
            break
        lo, hi = max(start, owner.start), min(end, owner.end)
        if lo >= hi:
            continue
        covered.append((lo, hi - lo))
        if owner.record == 0 and owner.attr_type == ATTR_DATA:
            yield from _mft_records(volume, lo, hi)
        else:
            yield (*_classify(volume, owner), (lo, hi - lo))
    position = start
    for lo, length in [*normalise(covered), (end, 0)]:
        if lo > position:
            boot = position < volume.boot.bytes_per_sector or \
                position >= volume.boot.backup_boot_offset
            yield ("ntfs-metadata", "$Boot", (position, lo - position)) if boot else \
                ("free-space", "", (position, lo - position))
        position = max(position, lo + length)


def _classify(volume: _Volume, owner: _Owner) -> tuple[DamageKind, str]:
    record = volume.records.get(owner.record)
    path = volume.path(owner.record)
    if owner.attr_type == ATTR_INDEX_ALLOCATION:
        return "ntfs-metadata", f"{path} (directory index)"
    if owner.record < FIRST_USER_RECORD or path.startswith("\\$Extend") or \
            owner.attr_type != ATTR_DATA or (record is not None and record.directory):
        return "ntfs-metadata", path
    return "file-data", f"{path}:{owner.attr_name}" if owner.attr_name else path


def _mft_records(volume: _Volume, lo: int, hi: int
                 ) -> Iterator[tuple[DamageKind, str, Extent]]:
    record_size = volume.boot.mft_record_size
    vcn_base = 0
    for run_start, run_length in volume.mft:
        for piece_start, piece_length in clip([(run_start, run_length)], lo, hi):
            first = (vcn_base + piece_start - run_start) // record_size
            last = (vcn_base + piece_start - run_start + piece_length - 1) // record_size
            for number in range(first, last + 1):
                yield from _one_record(volume, number, piece_start, piece_length)
        vcn_base += run_length


def _one_record(volume: _Volume, number: int, piece_start: int, piece_length: int
                ) -> Iterator[tuple[DamageKind, str, Extent]]:
    # Report each lost record once, at the damaged bytes it overlaps.
    record_size = volume.boot.mft_record_size
    share = min(piece_length, record_size)
    if number < FIRST_USER_RECORD:
        yield "ntfs-metadata", _METADATA_NAMES.get(number, f"MFT record {number}"), \
            (piece_start, share)
    elif number in volume.indexed or (number in volume.records
                                       and volume.records[number].name):
        yield "mft-record", volume.path(number), (piece_start, share)
    else:
        yield "free-space", "", (piece_start, share)  # an unused record


def _walk(read: Reader, size: int) -> _Volume:
    boot = parse_boot_sector(read(0, 512))
    cluster, record_size = boot.cluster_size, boot.mft_record_size
    first = apply_fixups(read(boot.mft_lcn * cluster, record_size), "$MFT")
    data = [a for a in parse_attributes(first, "$MFT") if a.type == ATTR_DATA and not a.name]
    if not data or data[0].resident:
        raise ValueError("$MFT has no data runs")
    volume = _Volume(boot, mft=_runs_to_extents(data[0].value, cluster))
    index_blocks: list[tuple[int, list[Extent]]] = []
    number = 0
    for run_start, run_length in volume.mft:
        for block in range(0, run_length, _WALK_BLOCK):
            raw = read(run_start + block, min(_WALK_BLOCK, run_length - block))
            for at in range(0, len(raw) - record_size + 1, record_size):
                _read_record(volume, number, raw[at: at + record_size], index_blocks)
                number += 1
    for directory, extents in index_blocks:
        _read_index_blocks(volume, read, directory, extents)
    volume.owners.sort(key=lambda owner: owner.start)
    return volume


def _read_record(volume: _Volume, number: int, raw: bytes,
                 index_blocks: list[tuple[int, list[Extent]]]) -> None:
    if raw[:4] != b"FILE":
        return
    flags = struct.unpack_from("<H", raw, 0x16)[0]
    if not flags & 0x1:  # not in use
        return
    base = struct.unpack_from("<Q", raw, 0x20)[0] & REFERENCE_MASK
    owner = base or number
    try:
        attributes = parse_attributes(apply_fixups(raw, f"MFT record {number}"), "")
    except RecoveryError:
        return
    record = volume.records.setdefault(owner, _Record(owner))
    record.directory = record.directory or bool(flags & 0x2)
    cluster = volume.boot.cluster_size
    for attribute in attributes:
        if attribute.type == ATTR_FILE_NAME and attribute.resident:
            _take_name(record, attribute.value)
        elif attribute.type == ATTR_INDEX_ROOT and attribute.resident:
            _read_index_entries(volume, attribute.value, 0x10)
        elif not attribute.resident:
            extents = _runs_to_extents(attribute.value, cluster)
            volume.owners += [_Owner(start, start + length, owner, attribute.type,
                                     attribute.name) for start, length in extents]
            if attribute.type == ATTR_INDEX_ALLOCATION:
                index_blocks.append((owner, extents))
            if attribute.type == ATTR_DATA and not attribute.name:
                record.size = max(record.size, attribute.data_size)


def _take_name(record: _Record, value: bytes) -> None:
    parent = struct.unpack_from("<Q", value, 0)[0] & REFERENCE_MASK
    length, namespace = value[0x40], value[0x41]
    if namespace == 2 and record.name:  # a DOS 8.3 name: keep the long one
        return
    record.name = value[0x42: 0x42 + 2 * length].decode("utf-16-le", "replace")
    record.parent = parent


def _read_index_entries(volume: _Volume, node: bytes, header: int) -> None:
    """Entries of an index node ($INDEX_ROOT value or INDX block); `header` is where its
    node header starts. Each names a file by reference: how a lost record is named."""
    first, used = struct.unpack_from("<II", node, header)
    position, end = header + first, min(header + used, len(node))
    while position + 16 <= end:
        reference, length, key_length, flags = struct.unpack_from("<QHHH", node, position)
        if length < 16 or flags & 0x2:
            break
        if key_length >= 0x42:
            key = node[position + 16: position + 16 + key_length]
            name_length, namespace = key[0x40], key[0x41]
            name = key[0x42: 0x42 + 2 * name_length].decode("utf-16-le", "replace")
            number = reference & REFERENCE_MASK
            if namespace != 2 or number not in volume.indexed:
                parent = struct.unpack_from("<Q", key, 0)[0] & REFERENCE_MASK
                real_size = struct.unpack_from("<Q", key, 0x30)[0]
                volume.indexed[number] = (parent, name, real_size)
        position += length


def _read_index_blocks(volume: _Volume, read: Reader, directory: int,
                       extents: list[Extent]) -> None:
    for start, length in extents:
        try:
            raw = read(start, length)
        except RecoveryError:
            continue
        for at in range(0, len(raw) - 4096 + 1, 4096):
            block = raw[at: at + 4096]
            if block[:4] != b"INDX":
                continue
            try:
                _read_index_entries(volume, apply_fixups(block, "index block"), 0x18)
            except (RecoveryError, struct.error):
                continue
