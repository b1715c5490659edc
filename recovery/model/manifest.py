"""What an image is: the facts a manifest records about one capture (formats 1 and 2).

Plain frozen dataclasses; reading and writing them as YAML, and their hashes, live in
recovery/store/manifest.py. Sizes and offsets are bytes; times are ISO 8601 UTC strings
("2026-11-25T15:30:00Z") so they round-trip through YAML unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from recovery.model.layout import PartitionTable, Role

# Format 2 adds what a rescue capture could not read (PartitionImage.unreadable, .damaged).
# Format 3 adds unreadable bytes of the disk's own areas, outside every partition
# (ImageManifest.disk_unreadable, .table_copy). Each image is written in the lowest format
# that holds what it records, so that older versions of recovery keep reading the images
# they can; fields of a newer format default to empty when an older file loads, and a
# version that does not know a format refuses it by its number instead of misreading it.
MANIFEST_FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
DamageKind = Literal["file-data", "mft-record", "ntfs-metadata", "free-space", "unknown"]
# The disk's own areas: LBA 0 (MBR or protective MBR with its boot code), the primary GPT
# (header and entries after LBA 0), the backup GPT at the end, and on MBR disks the gap
# between LBA 0 and the first partition where boot loaders live, and the EBRs of an
# extended partition (each: one logical partition's place and the link to the next EBR).
DiskArea = Literal["mbr", "primary-gpt", "backup-gpt", "post-mbr-gap", "ebr"]


def utc_timestamp(when: datetime | None = None) -> str:
    """ISO 8601 UTC to the second, the form every manifest uses."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SourceIdentity:
    """The disk an image came from, as `recovery disks` identified it."""

    stable_id: str  # ID_SERIAL / ID_WWN / ID_PATH, never /dev/sdX
    model: str
    serial: str
    bus: str
    size: int
    logical_sector_size: int
    node: str  # where it was at capture time, for the technician only


@dataclass(frozen=True)
class RawArea:
    """Bytes outside any partition that booting needs (LBA 0, the post-MBR gap).

    Stored as one chunk under `digest` (BLAKE3 of the raw bytes).
    """

    name: str
    offset: int
    size: int
    digest: str  # 64 hex digits


@dataclass(frozen=True)
class ByteRange:
    """Bytes of a partition: `offset` from the partition start, sector-aligned."""

    offset: int
    length: int


@dataclass(frozen=True)
class DamagedItem:
    """What lived in unreadable bytes: a file's data, an MFT record (which file), NTFS
    metadata, or free space (nothing lost). `offset` is the first unreadable byte of it,
    from the partition start."""

    kind: DamageKind
    path: str
    bytes_lost: int
    offset: int
    note: str = ""


@dataclass(frozen=True)
class DiskAreaDamage:
    """Unreadable bytes of one of the disk's own areas (no partition holds them), stored
    as zeros: which area, what lived there and what a restore does about it."""

    area: DiskArea
    offset: int  # from the disk start, sector-aligned
    length: int
    what: str  # "boot code after the MBR", "primary GPT - the backup GPT was used"
    restore: str  # what a restore of this image writes there instead


@dataclass(frozen=True)
class PartitionImage:
    """One partition of the source; `captured` False when the technician left it out."""

    number: int
    role: Role
    fs_type: str
    label: str
    start: int
    size: int
    used_bytes: int
    captured: bool
    warnings: tuple[str, ...] = ()
    chunk_count: int = 0  # chunks in the index, zero chunks included
    stored_bytes: int = 0  # compressed bytes of the chunks this capture added
    fingerprint: str = ""  # NTFS metadata hash: a repeat capture of an unchanged volume
    reused_from: str = ""  # the image whose chunks an unchanged volume reused, unread
    reuse_check: str = ""  # its spot check: "4 of 4 sampled chunks matched" (or differed)
    # Format 2: used bytes a rescue capture could not read (stored as zeros), and what
    # they belonged to.
    unreadable: tuple[ByteRange, ...] = ()
    damaged: tuple[DamagedItem, ...] = ()

    @property
    def unreadable_bytes(self) -> int:
        return sum(piece.length for piece in self.unreadable)


@dataclass(frozen=True)
class CaptureStats:
    bytes_read: int = 0
    bytes_stored: int = 0
    chunks_new: int = 0
    chunks_reused: int = 0
    chunks_zero: int = 0
    seconds: float = 0.0
    # Rescue captures: where the time went and how the failing reads went.
    good_read_seconds: float = 0.0
    bad_read_seconds: float = 0.0
    reads_failed: int = 0
    reads_retried: int = 0


@dataclass(frozen=True, kw_only=True)
class ImageManifest:
    """Everything needed to restore and verify an image, except the chunk list (index.bin).

    `index_file`, `index_blake3`, `index_size` and `manifest_blake3` are filled in by
    `ImageWriter.commit`; the engine leaves them empty. Keyword-only: fields are in the
    order the YAML shows them.
    """

    format: int = 1
    name: str
    created: str
    tool_version: str
    host: str
    chunk_size: int
    source: SourceIdentity
    computer: str = ""  # the Windows computer name (SYSTEM hive), "" when not found
    table: PartitionTable
    raw_areas: tuple[RawArea, ...] = ()
    # Format 3 (a rescue capture): which GPT copy the table was read from when the other
    # was unreadable ("primary", "backup"; "" when both read or the disk is MBR), and the
    # unreadable bytes of the disk's own areas.
    table_copy: str = ""
    disk_unreadable: tuple[DiskAreaDamage, ...] = ()
    partitions: tuple[PartitionImage, ...] = ()
    index_file: str = ""
    index_blake3: str = ""
    index_size: int = 0
    stats: CaptureStats = field(default_factory=CaptureStats)
    manifest_blake3: str = ""

    @classmethod
    def build(cls, *, name: str, created: datetime, tool_version: str, host: str,
              chunk_size: int, source: SourceIdentity, table: PartitionTable,
              raw_areas: tuple[RawArea, ...] = (), partitions: tuple[PartitionImage, ...] = (),
              stats: CaptureStats | None = None, computer: str = "", table_copy: str = "",
              disk_unreadable: tuple[DiskAreaDamage, ...] = ()) -> ImageManifest:
        """A new, unsealed manifest; `created` becomes ISO 8601 UTC. Format 2 only when a
        format-2 field (unreadable ranges, the computer name) is used, 3 for format 3's."""
        fmt = 3 if table_copy or disk_unreadable else \
            2 if computer or any(p.unreadable for p in partitions) else 1
        return cls(format=fmt, name=name, created=utc_timestamp(created),
                   tool_version=tool_version, host=host, chunk_size=chunk_size, source=source,
                   computer=computer, table=table, raw_areas=raw_areas, table_copy=table_copy,
                   disk_unreadable=disk_unreadable, partitions=partitions,
                   stats=stats or CaptureStats())

    def partition(self, number: int) -> PartitionImage:
        for part in self.partitions:
            if part.number == number:
                return part
        raise KeyError(number)

    @property
    def captured_partitions(self) -> tuple[PartitionImage, ...]:
        return tuple(p for p in self.partitions if p.captured)

    @property
    def unreadable_bytes(self) -> int:
        """Used bytes the source would not give (stored as zeros), in partitions and in
        the disk's own areas; 0 for a whole image."""
        return (sum(p.unreadable_bytes for p in self.partitions)
                + sum(piece.length for piece in self.disk_unreadable))
