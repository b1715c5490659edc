"""The rescue read path of a capture: targets from the plan, an earlier rescue image to
start from, the passes (recovery.engine.rescue), and what the unreadable bytes belonged to.

Kept apart from capture.py, which calls `rescue_partitions` instead of its normal reader
when `CaptureRequest.rescue` is set; chunks, index and manifest are written the same way.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass

from recovery.engine.rescue import (
    PreviousRescue,
    RescueOptions,
    Rescuer,
    RescueStats,
    RescueTarget,
    StoreChunk,
)
from recovery.errors import RecoveryError
from recovery.events import EventSink, Notice
from recovery.fs.ntfs_map import important_ranges, map_damage
from recovery.fs.probe import VolumeInfo
from recovery.model.extents import Extent, clip
from recovery.model.layout import TablePartition
from recovery.model.manifest import ByteRange, DamagedItem
from recovery.registry.shadowcopies import ShadowCopies
from recovery.store.index import ChunkRef
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import RandomAccessFile
from recovery.units import MiB, human_size


@dataclass(frozen=True)
class RescuedPartition:
    refs: list[ChunkRef]
    unreadable: tuple[ByteRange, ...]
    damaged: tuple[DamagedItem, ...]
    retried_from: str  # the earlier rescue image whose chunks were reused, or ""
    stored_bytes: int = 0
    read_bytes: int = 0


@dataclass
class RescueOutcome:
    partitions: dict[int, RescuedPartition]
    stats: RescueStats


@dataclass(frozen=True)
class RescueJob:
    device: BlockDevice
    store: ChunkStore
    chunk_size: int
    options: RescueOptions
    source_id: str
    store_chunk: StoreChunk
    advance: Callable[[int], None]
    events: EventSink
    cancel: threading.Event | None


def rescue_partitions(job: RescueJob, parts: list[tuple[TablePartition, VolumeInfo]]
                      ) -> RescueOutcome:
    targets = [_target(job, part, volume) for part, volume in parts]
    for target in targets:
        if target.previous is not None:
            job.events(Notice(
                f"Partition {target.number}: starting from rescue image "
                f"{target.previous.image}; only its "
                f"{human_size(sum(n for _, n in target.previous.unreadable))} of unreadable "
                "bytes are read again, its other chunks are reused."))
    result = Rescuer(job.device, job.chunk_size, job.options, job.store_chunk,
                     job.store.get, job.advance, job.events, job.cancel).run(targets)
    out = {}
    for target, (_part, volume) in zip(targets, parts, strict=True):
        bad = result.unreadable.get(target.number, [])
        damaged = _damage(job, target, volume, result.refs[target.number], bad) if bad else []
        out[target.number] = RescuedPartition(
            result.refs[target.number], tuple(ByteRange(start, n) for start, n in bad),
            tuple(damaged), target.previous.image if target.previous else "")
    return RescueOutcome(out, result.stats)


def _target(job: RescueJob, part: TablePartition, volume: VolumeInfo) -> RescueTarget:
    if volume.fs_type == "ntfs":
        priority = important_ranges(job.device, part.start, part.size)
    else:  # FAT: boot sector and tables sit at the start
        priority = [(0, min(part.size, MiB))]
    return RescueTarget(part.number, part.start, part.size, list(volume.used), priority,
                        previous_rescue(job.store, job.source_id, job.chunk_size, part,
                                        volume.used))


def previous_rescue(store: ChunkStore, source_id: str, chunk_size: int,
                    part: TablePartition, used: list[Extent]) -> PreviousRescue | None:
    """The newest complete image of this disk, when it is a rescue image with unreadable
    bytes (the case ddrescue's map file is for) and this partition has the same place, used
    blocks and chunk size and every chunk in the store. A whole earlier image is never
    taken: a disk that reads may have changed since."""
    images = sorted((i for i in store.list_images()
                     if i.complete and i.manifest and i.source_id == source_id),
                    key=lambda i: i.created, reverse=True)
    if not images or images[0].manifest is None or not images[0].manifest.unreadable_bytes:
        return None
    manifest = images[0].manifest
    try:
        meta = manifest.partition(part.number)
        index = store.load_image(manifest.name)[1].partition(part.number)
    except (KeyError, RecoveryError):
        return None
    if index is None or manifest.chunk_size != chunk_size or meta.start != part.start or \
            meta.size != part.size or list(index.extents) != list(used) or \
            not all(store.has(d) for d in index.stored_digests()):
        return None
    return PreviousRescue(manifest.name, index.chunks,
                          tuple((r.offset, r.length) for r in meta.unreadable))


def _damage(job: RescueJob, target: RescueTarget, volume: VolumeInfo, refs: list[ChunkRef],
            bad: list[Extent]) -> list[DamagedItem]:
    if volume.fs_type != "ntfs":
        return [DamagedItem("unknown", "", sum(n for _, n in bad), bad[0][0],
                            f"a {volume.fs_type} volume: which files were hit is not "
                            "mapped")]
    reader = CapturedVolume(job.store, job.chunk_size, target, refs)
    shadows = ShadowCopies(lambda: _Refusing(reader, bad))
    try:
        return map_damage(reader.read, target.size, bad,
                          shadows.note if shadows.count else None)
    finally:
        shadows.close()


class _Refusing(RandomAccessFile):
    """The captured volume as a file that refuses the bytes the rescue could not read: a
    shadow copy read through them is no good copy (its zeros are not the file)."""

    def __init__(self, volume: CapturedVolume, bad: list[Extent]) -> None:
        super().__init__(volume.size)
        self.volume, self.bad = volume, bad

    def read_at(self, offset: int, length: int) -> bytes:
        if clip(self.bad, offset, offset + length):
            raise OSError(errno.EIO, f"bytes {offset}-{offset + length - 1} were unreadable")
        return self.volume.read(offset, length)


class CapturedVolume:
    """A partition as the image holds it (unused and unreadable bytes zero), read from
    the store: what lost data is mapped from, so the failing disk is not read again."""

    def __init__(self, store: ChunkStore, chunk_size: int, target: RescueTarget,
                 refs: list[ChunkRef]) -> None:
        self.store, self.chunk_size, self.size = store, chunk_size, target.size
        self.refs = {ref.number: ref for ref in refs}
        self._cached: tuple[int, bytes] | None = None

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray()
        position, end = offset, min(offset + length, self.size)
        while position < end:
            number = position // self.chunk_size
            chunk_start = number * self.chunk_size
            piece = min(end, chunk_start + self.chunk_size) - position
            data = self._chunk(number)
            at = position - chunk_start
            out += data[at: at + piece] if data else bytes(piece)
            position += piece
        return bytes(out)

    def _chunk(self, number: int) -> bytes:
        if self._cached is not None and self._cached[0] == number:
            return self._cached[1]
        ref = self.refs.get(number)
        data = b"" if ref is None or ref.zero else self.store.get(ref.digest)
        self._cached = (number, data)
        return data
