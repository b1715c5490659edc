"""A disk's partition table as captured and as restored: every identifier Windows relies on.

Windows' BCD finds its partitions by disk GUID / MBR signature plus partition GUID or
offset, so these values are kept exactly, in bytes and upper-case GUID strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Scheme = Literal["gpt", "mbr"]
MbrKind = Literal["primary", "extended", "logical"]
Role = Literal["boot", "reserved", "system", "data", "unknown"]


@dataclass(frozen=True)
class TablePartition:
    number: int
    start: int  # bytes from the start of the disk
    size: int  # bytes
    type_id: str  # GPT: type GUID, upper case; MBR: two hex digits, e.g. "07"
    guid: str = ""  # GPT partition (unique) GUID, upper case; "" on MBR
    name: str = ""  # GPT partition name
    attributes: int = 0  # GPT attribute bits (bit 0 required, 62 hidden, 63 no drive letter)
    bootable: bool = False  # MBR active flag
    kind: MbrKind = "primary"  # MBR only; GPT partitions are all "primary"

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class PartitionTable:
    scheme: Scheme
    sector_size: int
    disk_size: int  # bytes of the disk the table was read from
    disk_id: str  # GPT disk GUID (upper case) or MBR signature as 8 hex digits
    partitions: tuple[TablePartition, ...] = field(default_factory=tuple)
    first_usable_lba: int = 0  # GPT only
    last_usable_lba: int = 0  # GPT only
    entry_count: int = 128  # GPT partition-entry array size
    entry_size: int = 128

    @property
    def end_of_last_partition(self) -> int:
        """The smallest disk size this layout fits on (GPT adds its backup area)."""
        end = max((p.end for p in self.partitions), default=0)
        if self.scheme == "gpt":
            end += (self.entry_count * self.entry_size // self.sector_size + 1) * self.sector_size
        return end

    def data_partitions(self) -> list[TablePartition]:
        """Partitions that hold data (MBR extended containers hold only the EBR chain)."""
        return [p for p in self.partitions if p.kind != "extended"]
