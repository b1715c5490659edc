"""What a capture (or rescue capture) reports: typed, per partition, so shells read
attributes and --json serialises them (nothing is parsed back out of a dict)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recovery.model.layout import Role
from recovery.model.manifest import (
    ByteRange,
    CaptureStats,
    DamagedItem,
    DiskAreaDamage,
    PartitionImage,
)


@dataclass(frozen=True)
class CapturedPartition:
    """One partition of the source disk as this capture left it in the image."""

    number: int
    role: Role
    fs_type: str
    label: str
    start: int
    size: int
    used_bytes: int
    selected: bool  # False: the technician left it out, nothing was read
    warnings: tuple[str, ...] = ()
    bytes_read: int = 0  # used bytes read from the disk (0 for a reused volume)
    bytes_stored: int = 0  # compressed bytes this capture added to the store
    chunks: int = 0  # chunks in the image, zero chunks included
    reused_from: str = ""  # the image whose chunks an unchanged volume reused, unread
    reuse_check: str = ""  # its spot check: "4 of 4 sampled chunks matched" (or differed)
    # A rescue capture: used bytes that could not be read (stored as zeros), and what
    # they belonged to.
    unreadable: tuple[ByteRange, ...] = ()
    damaged: tuple[DamagedItem, ...] = ()

    @property
    def unreadable_bytes(self) -> int:
        return sum(piece.length for piece in self.unreadable)

    @classmethod
    def of(cls, meta: PartitionImage, bytes_read: int) -> CapturedPartition:
        """The result of one partition from its manifest entry."""
        return cls(number=meta.number, role=meta.role, fs_type=meta.fs_type,
                   label=meta.label, start=meta.start, size=meta.size,
                   used_bytes=meta.used_bytes, selected=meta.captured,
                   warnings=meta.warnings, bytes_read=bytes_read,
                   bytes_stored=meta.stored_bytes, chunks=meta.chunk_count,
                   reused_from=meta.reused_from, reuse_check=meta.reuse_check,
                   unreadable=meta.unreadable, damaged=meta.damaged)

    def to_dict(self) -> dict[str, object]:
        # The keys --json always had; the rescue facts only where bytes were lost.
        found: dict[str, object] = {
            "number": self.number, "role": self.role, "fs_type": self.fs_type,
            "label": self.label, "start": self.start, "size": self.size,
            "used_bytes": self.used_bytes, "selected": self.selected,
            "warnings": list(self.warnings), "bytes_read": self.bytes_read,
            "bytes_stored": self.bytes_stored, "chunks": self.chunks,
            "reused_from": self.reused_from or None, "reuse_check": self.reuse_check or None}
        if self.unreadable:
            found |= {"unreadable_bytes": self.unreadable_bytes,
                      "unreadable": [asdict(r) for r in self.unreadable],
                      "damaged": [asdict(d) for d in self.damaged]}
        return found


@dataclass
class CaptureSummary:
    image: str
    store: str
    partitions: list[CapturedPartition]
    stats: CaptureStats
    warnings: list[str] = field(default_factory=list)
    # A rescue: unreadable bytes of the disk's own areas (LBA 0, GPT copies, post-MBR
    # gap), and the GPT copy the table came from when one did not read.
    disk_unreadable: list[DiskAreaDamage] = field(default_factory=list)
    table_copy: str = ""

    @property
    def unreadable_bytes(self) -> int:
        return (sum(p.unreadable_bytes for p in self.partitions)
                + sum(piece.length for piece in self.disk_unreadable))

    def to_dict(self) -> dict[str, object]:
        found = {"image": self.image, "store": self.store,
                 "partitions": [p.to_dict() for p in self.partitions],
                 **asdict(self.stats), "unreadable_bytes": self.unreadable_bytes,
                 "warnings": self.warnings}
        if self.disk_unreadable or self.table_copy:
            found |= {"table_copy": self.table_copy or None,
                      "disk_unreadable": [asdict(d) for d in self.disk_unreadable]}
        return found
