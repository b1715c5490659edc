"""Verify: is the image whole, and does a disk hold exactly what the image says?

Image check: the manifest's own hash and the index's hash (checked on load), then every
chunk the image uses is read, decompressed and hashed. Disk check: partition table
identifiers, boot areas, and every used range of every captured partition hashed as it is
on the medium (page cache bypassed). Every problem is collected, not just the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from recovery import __version__
from recovery.engine.chunking import ChunkIO, digest
from recovery.engine.pipeline import ordered_map
from recovery.engine.placed import PlacedChunk, all_placed
from recovery.engine.table import compare_tables, read_table
from recovery.errors import DeviceIOError, RecoveryError, StoreError
from recovery.events import EventSink, Notice, discard, phase
from recovery.model.extents import clip
from recovery.model.manifest import ImageManifest, utc_timestamp
from recovery.store.index import ImageIndex
from recovery.store.objects import ChunkStore
from recovery.store.verified import Verification
from recovery.sys.blockdev import BlockDevice


@dataclass
class VerifySummary:
    image: str
    target: str | None
    chunks_checked: int = 0
    bytes_checked: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # A rescue image: used bytes the source would not give, zeros in the image. Not a
    # problem of the image (every chunk is still checked), but it is not whole.
    unreadable_bytes: int = 0
    # How each partition on the target was compared (partition number -> method), e.g.
    # "chunks" or, for a volume resized to fit the disk, "file tree (...)".
    methods: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {"image": self.image, "target": self.target, "ok": self.ok,
                "chunks_checked": self.chunks_checked, "bytes_checked": self.bytes_checked,
                "unreadable_bytes": self.unreadable_bytes,
                "problems": self.problems, "seconds": round(self.seconds, 3),
                "methods": {str(n): m for n, m in self.methods.items()}}


def check_on_disk(device: BlockDevice, chunks: Iterator[PlacedChunk],
                  advance: Callable[[int], None], cancel: threading.Event | None
                  ) -> Iterator[tuple[PlacedChunk, str | None]]:
    """Hash each chunk's used ranges as the medium holds them; yields (chunk, problem)."""
    def check(chunk: PlacedChunk) -> tuple[PlacedChunk, str | None]:
        try:
            data = chunk.read_from(chunk_io)
        except DeviceIOError as exc:
            return chunk, f"{chunk.where()}: {exc.title}"
        if digest(data) != chunk.ref.digest:
            return chunk, f"{chunk.where()}: content differs from the image"
        return chunk, None

    with ChunkIO(device) as chunk_io:
        for chunk, problem in ordered_map(check, chunks, cancel=cancel):
            advance(chunk.span.used_bytes)
            yield chunk, problem


def verify(store_path: Path, image: str, target: Path | None = None,
           events: EventSink = discard, cancel: threading.Event | None = None
           ) -> VerifySummary:
    started = time.monotonic()
    store = ChunkStore.open(store_path)
    manifest, index = store.load_image(image)
    summary = VerifySummary(image, str(target) if target else None,
                            unreadable_bytes=manifest.unreadable_bytes)
    with store.locked("verify", image=image, read_only_ok=True):
        _check_store_chunks(store, manifest, index, summary, events, cancel)
        _record_image_check(store, image, summary, events)
    if target is not None:
        _check_target(target, store, manifest, index, summary, events, cancel)
    summary.seconds = time.monotonic() - started
    return summary


def _check_store_chunks(store: ChunkStore, manifest: ImageManifest, index: ImageIndex,
                        summary: VerifySummary, events: EventSink,
                        cancel: threading.Event | None) -> None:
    needed: dict[bytes, tuple[str, int]] = {}  # digest -> (where, uncompressed length)
    for chunk in all_placed(manifest, index):
        if not chunk.ref.zero:
            needed.setdefault(chunk.ref.digest, (chunk.where(), chunk.span.length))
    for area in manifest.raw_areas:
        needed.setdefault(bytes.fromhex(area.digest), (f"boot area {area.name}", area.size))

    def check(item: tuple[bytes, tuple[str, int]]) -> tuple[int, str | None]:
        chunk_digest, (where, length) = item
        try:
            store.get(chunk_digest)
        except RecoveryError as exc:
            return length, f"{where}: {exc.title}"
        return length, None

    total = sum(length for _, length in needed.values())
    with phase(events, "verify-image", "Checking chunks", total) as tracker:
        for length, problem in ordered_map(check, needed.items(), cancel=cancel):
            summary.chunks_checked += 1
            summary.bytes_checked += length
            tracker.advance(length)
            if problem:
                summary.problems.append(problem)


def _record_image_check(store: ChunkStore, image: str, summary: VerifySummary,
                        events: EventSink) -> None:
    """Keep the image check's outcome in the store, so image lists can say whether and when
    the image verified. A store that cannot be written (mounted read-only) keeps none."""
    verification = Verification(
        checked=utc_timestamp(), ok=summary.ok, problems=len(summary.problems),
        chunks_checked=summary.chunks_checked, bytes_checked=summary.bytes_checked,
        tool_version=__version__)
    try:
        store.record_verification(image, verification)
    except StoreError as exc:
        events(Notice(f"The result of this check was not recorded in the store: {exc.title}",
                      "warning"))


def _check_target(target: Path, store: ChunkStore, manifest: ImageManifest,
                  index: ImageIndex, summary: VerifySummary, events: EventSink,
                  cancel: threading.Event | None) -> None:
    from recovery.engine import verify_resized as fitted

    with BlockDevice.open(target, sector_size=manifest.table.sector_size) as device:
        expected = manifest.table
        try:
            actual = read_table(device)
            expected = fitted.expected_table(manifest, actual)
            summary.problems.extend(compare_tables(expected, actual))
        except RecoveryError as exc:
            summary.problems.append(f"partition table: {exc.title}")
        summary.problems.extend(check_boot_areas(device, manifest))
        summary.methods = fitted.methods(manifest, expected)
        by_chunks = [n for n, m in summary.methods.items() if m != fitted.FILE_TREE]
        starts = {p.number: p.start for p in expected.partitions}
        chunks = (replace(c, partition_offset=starts[c.partition])
                  for c in all_placed(manifest, index) if c.partition in by_chunks)
        total = sum(p.used_bytes for p in manifest.captured_partitions
                    if p.number in by_chunks)
        with phase(events, "verify-disk", f"Comparing {target.name}",
                   total) as tracker:
            for _chunk, problem in check_on_disk(device, chunks, tracker.advance, cancel):
                if problem:
                    summary.problems.append(problem)
        for number in sorted(set(summary.methods) - set(by_chunks)):
            events(Notice(f"Partition {number} was resized: comparing its files with the "
                          "image's."))
            summary.problems.extend(fitted.check_file_tree(device, store, manifest, index,
                                                           expected, number))


def check_boot_areas(device: BlockDevice, manifest: ImageManifest) -> list[str]:
    problems = []
    lost = [(piece.offset, piece.length) for piece in manifest.disk_unreadable]
    for area in manifest.raw_areas:
        data = bytearray(device.read_uncached(area.offset, area.size))
        # Bytes the source would not give are zeros in the image: not compared on disks.
        for start, length in clip(lost, area.offset, area.offset + area.size):
            data[start - area.offset: start - area.offset + length] = bytes(length)
        if digest(bytes(data)).hex() != area.digest:
            problems.append(f"boot area {area.name} (offset {area.offset}, {area.size} bytes) "
                            "differs from the image")
    return problems
