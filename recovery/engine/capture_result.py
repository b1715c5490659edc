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
    """One partition of the source disk as this capture left it in the image: its entry in
    the manifest, and the used bytes read from the disk for it (0 for a reused volume)."""

    meta: PartitionImage
    bytes_read: int = 0

    # What the shells read, by the names --json has always used.
    @property
    def number(self) -> int:
        return self.meta.number

    @property
    def role(self) -> Role:
        return self.meta.role

    @property
    def fs_type(self) -> str:
        return self.meta.fs_type

    @property
    def used_bytes(self) -> int:
        return self.meta.used_bytes

    @property
    def selected(self) -> bool:  # False: the technician left it out, nothing was read
        return self.meta.captured

    @property
    def reused_from(self) -> str:
        return self.meta.reused_from

    @property
    def reuse_check(self) -> str:
        return self.meta.reuse_check

    @property
    def unreadable(self) -> tuple[ByteRange, ...]:
        return self.meta.unreadable

    @property
    def damaged(self) -> tuple[DamagedItem, ...]:
        return self.meta.damaged

    @property
    def unreadable_bytes(self) -> int:
        return self.meta.unreadable_bytes

    def to_dict(self) -> dict[str, object]:
        # The keys --json always had; the rescue facts only where bytes were lost.
        meta = self.meta
        found: dict[str, object] = {
            "number": meta.number, "role": meta.role, "fs_type": meta.fs_type,
            "label": meta.label, "start": meta.start, "size": meta.size,
            "used_bytes": meta.used_bytes, "selected": meta.captured,
            "warnings": list(meta.warnings), "bytes_read": self.bytes_read,
            "bytes_stored": meta.stored_bytes, "chunks": meta.chunk_count,
            "reused_from": meta.reused_from or None, "reuse_check": meta.reuse_check or None}
        if meta.unreadable:
            found |= {"unreadable_bytes": meta.unreadable_bytes,
                      "unreadable": [asdict(r) for r in meta.unreadable],
                      "damaged": [asdict(d) for d in meta.damaged]}
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
