"""A repeat capture of an unchanged NTFS volume, without reading its data again.

NTFS rewrites its own metadata whenever a volume is mounted read-write or anything in it
changes: file records in $MFT (sizes, run lists, four timestamps, log sequence numbers),
the restart areas and records of $LogFile, the cluster map in $Bitmap. Windows, chkdsk and
ntfs-3g all go through them. So the BLAKE3 of the boot sector, $MFT, $LogFile and $Bitmap
(a few MB on a small volume, well under 1 % of a large one) names the volume's state; when
an earlier complete image of the same disk recorded the same fingerprint for the same
partition, with the same used-block map and chunk size, its chunks are this volume's
chunks and the data need not be read. This is the offline counterpart of Windows' change
tracking and, like it, cannot see writes that bypass the file system altogether (a disk
editor writing raw sectors): `CaptureRequest(reuse_unchanged=False)` reads everything.
"""

from __future__ import annotations

from collections.abc import Iterator

import blake3

from recovery.errors import RecoveryError
from recovery.fs.ntfs import ATTR_ATTRIBUTE_LIST, ATTR_DATA, NtfsReader, decode_runlist
from recovery.model.layout import TablePartition
from recovery.store.index import PartitionIndex
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB

FINGERPRINT_PREFIX = "ntfs-meta-blake3:"
_MFT, _LOGFILE, _BITMAP = 0, 2, 6
_READ_PIECE = 4 * MiB


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
