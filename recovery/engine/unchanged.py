"""A repeat capture of an unchanged NTFS volume, without reading its data again.

NTFS rewrites its own metadata whenever a volume is mounted read-write or anything in it
changes: file records in $MFT (sizes, run lists, four timestamps, log sequence numbers),
the restart areas and records of $LogFile, the cluster map in $Bitmap. Windows, chkdsk and
ntfs-3g all go through them. So the BLAKE3 of the boot sector, $MFT, $LogFile and $Bitmap
(a few MB on a small volume, well under 1 % of a large one) names the volume's state; when
an earlier complete image of the same disk recorded the same fingerprint for the same
partition, with the same used-block map and chunk size, and every chunk of it is still in
the store, its chunks are this volume's chunks and the data need not be read. This is the
offline counterpart of Windows' change tracking (and of Macrium's Rapid Delta, which trusts
NTFS metadata the same way). It is what a capture does unless `CaptureRequest(read_all=True)`
(`recovery capture --read-all`).

Writes that bypass NTFS leave the fingerprint as it was. The one that happens in the field
is an interrupted restore of another image: its data chunks reached the disk, the chunks
holding the metadata did not. So before reusing, `spot_check` reads K of the earlier image's
chunks straight from the disk (O_DIRECT, the capture's own chunk reader) and compares their
BLAKE3 with the image's: the partition's first and last used chunk, and one chunk drawn at
random (os.urandom-seeded, different every capture) from each of K - 2 equal slices of the
rest. K is about 1 % of the chunks, at least 4 and at most 16 (16 MiB to 64 MiB of reading
with 4 MiB chunks). Any differing chunk sends the partition to the full read.

What it catches: a disk where a fraction f of the chunks differs from the image is caught
with probability at least 1 - (1 - f)^K (the slices make it at least as likely as K
independent draws): f = 0.5 misses 1 time in 2^K; any run of differing chunks longer than two
slices (an interrupted restore writes in order) is always caught. What it cannot catch: a
change confined to a few chunks, such as one sector rewritten with a disk editor or a single
bad block that still reads, unless it falls on a sampled chunk. For that, `--read-all`.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import blake3

from recovery.engine.chunking import ChunkIO, ChunkSpan, chunk_spans, digest
from recovery.engine.pipeline import ordered_map
from recovery.errors import RecoveryError
from recovery.fs.ntfs import ATTR_ATTRIBUTE_LIST, ATTR_DATA, NtfsReader, decode_runlist
from recovery.model.layout import TablePartition
from recovery.store.index import ChunkRef, PartitionIndex
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB

FINGERPRINT_PREFIX = "ntfs-meta-blake3:"
_MFT, _LOGFILE, _BITMAP = 0, 2, 6
_READ_PIECE = 4 * MiB
SPOT_CHECK_MIN, SPOT_CHECK_MAX = 4, 16
SPOT_CHECK_SHARE = 0.01  # of the chunks: about 1 % of the used data


def ntfs_fingerprint(device: BlockDevice, offset: int, size: int) -> str:
    """The volume's metadata fingerprint, or "" when it cannot be taken with certainty
    (not NTFS, damaged, or a metadata file whose runs spill into other records)."""
    hasher = blake3.blake3()
    try:
        reader = NtfsReader(device, offset, size)
        hasher.update(device.read_at(offset, reader.boot.bytes_per_sector))
        for record in (_MFT, _LOGFILE, _BITMAP):
            for piece in _unnamed_data(reader, record):
                hasher.update(piece)
    except (RecoveryError, ValueError, _Unsure):
        return ""
    return FINGERPRINT_PREFIX + hasher.hexdigest()


class _Unsure(Exception):
    """The metadata cannot be read completely from its base record."""


def _unnamed_data(reader: NtfsReader, record: int) -> Iterator[bytes]:
    attributes = reader.attributes(record)
    if any(a.type == ATTR_ATTRIBUTE_LIST for a in attributes):
        raise _Unsure
    data = [a for a in attributes if a.type == ATTR_DATA and not a.name]
    if len(data) != 1:
        raise _Unsure
    if data[0].resident:
        yield data[0].value
        return
    cluster = reader.boot.cluster_size
    remaining = data[0].data_size
    yield remaining.to_bytes(8, "little")
    for lcn, count in decode_runlist(data[0].value):
        length = min(count * cluster, remaining)
        if lcn is None or length <= 0:
            raise _Unsure  # sparse or overlong runs: not what NTFS writes for these files
        start = lcn * cluster
        if start + length > reader.size:
            raise _Unsure
        for done in range(0, length, _READ_PIECE):
            yield reader.device.read_at(reader.offset + start + done,
                                        min(_READ_PIECE, length - done))
        remaining -= length


def unchanged_since(store: ChunkStore, source_id: str, chunk_size: int,
                    part: TablePartition, used: list[tuple[int, int]], fingerprint: str
                    ) -> tuple[str, PartitionIndex] | None:
    """The newest complete image of this disk whose copy of `part` had this fingerprint,
    used-block map and chunk size, and every chunk of it still in the store."""
    if not fingerprint or not source_id:
        return None
    candidates = [(info.created, info.name, info.manifest) for info in store.list_images()
                  if info.manifest is not None and info.source_id == source_id
                  and info.manifest.chunk_size == chunk_size]
    for _created, name, manifest in sorted(candidates, reverse=True):
        meta = next((p for p in manifest.partitions if p.number == part.number), None)
        if meta is None or not meta.captured or meta.fingerprint != fingerprint or \
                (meta.start, meta.size) != (part.start, part.size):
            continue
        try:
            _manifest, index = store.load_image(name)
        except RecoveryError:
            continue
        previous = next((p for p in index.partitions if p.number == part.number), None)
        if previous is None or [tuple(e) for e in previous.extents] != used:
            continue
        if all(ref.zero or store.has(ref.digest) for ref in previous.chunks):
            return name, previous
    return None


@dataclass(frozen=True)
class SpotCheck:
    """What reading sampled chunks of an earlier image back from the disk showed."""

    image: str
    sampled: int
    differing: tuple[int, ...]  # chunk numbers whose content is not the image's
    bytes_read: int

    @property
    def matched(self) -> bool:
        return not self.differing

    def describe(self) -> str:
        if self.matched:
            return f"{self.sampled} of {self.sampled} sampled chunks matched"
        return (f"{len(self.differing)} of {self.sampled} sampled chunks differed from image "
                f"{self.image}: read in full")


def spot_check_size(chunk_count: int) -> int:
    """How many chunks to sample out of `chunk_count`: ~1 %, within [4, 16]."""
    wanted = max(SPOT_CHECK_MIN, min(SPOT_CHECK_MAX, math.ceil(chunk_count * SPOT_CHECK_SHARE)))
    return min(wanted, chunk_count)


def sample_chunks(chunks: Sequence[ChunkRef], rng: random.Random) -> list[ChunkRef]:
    """The first and last chunk, and one drawn by `rng` from each of K - 2 equal slices of
    the chunks between them (K from spot_check_size), in ascending order."""
    count = spot_check_size(len(chunks))
    if count >= len(chunks):
        return list(chunks)
    inner, slices = len(chunks) - 2, count - 2
    picks = [0, len(chunks) - 1]
    for number in range(slices):
        low, high = 1 + number * inner // slices, 1 + (number + 1) * inner // slices
        picks.append(rng.randrange(low, high))
    return [chunks[i] for i in sorted(picks)]


def spot_check(device: BlockDevice, part: TablePartition, chunk_size: int, image: str,
               previous: PartitionIndex, rng: random.Random,
               cancel: threading.Event | None = None) -> SpotCheck:
    """Read sampled chunks of `previous` from the disk, past the page cache, and compare
    their BLAKE3 with the image's (the partition's data is what a capture would read)."""
    sampled = {ref.number: ref.digest for ref in sample_chunks(previous.chunks, rng)}
    spans = [span for span in chunk_spans(part.size, chunk_size, list(previous.extents))
             if span.number in sampled]

    def work(span: ChunkSpan) -> tuple[int, bool]:
        content = chunk_io.read_masked(part.start, span, uncached=True)
        return span.number, digest(content) == sampled[span.number]

    with ChunkIO(device) as chunk_io:
        outcomes = list(ordered_map(work, spans, cancel=cancel))
    differing = [number for number, same in outcomes if not same]
    differing += sorted(set(sampled) - {number for number, _ in outcomes})  # not in the map
    return SpotCheck(image, len(sampled), tuple(differing),
                     sum(span.used_bytes for span in spans))
