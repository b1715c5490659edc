"""Restoring onto a disk of another size: plan the fitted layout, place chunks, resize NTFS.

The restore writes the fitted table, then every chunk at its partition's new start. The
Windows volume's chunks past a shrunk partition's new end are not written (the next
partition lies there now); ntfsresize then moves that data through the FUSE view
(recovery/engine/imageview.py), which reads it from the image and writes only into the
target. A grown volume is restored as it was and then grown in place, through the same view
(all of it the target's). Every block written is read back from the disk: the chunks by the
restore's read-back (the one straddling a shrunk volume's new end by what was written of
it), ntfsresize's writes by the view. The FAT ESP and every partition other than Windows
keep their size; partitions after Windows only move.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from recovery.engine.chunking import _zero_unused, digest
from recovery.engine.fit import FitRequest, FittedLayout, LayoutMode, fit_layout
from recovery.engine.imageview import ViewSpec, partition_view
from recovery.engine.placed import PlacedChunk
from recovery.errors import Hint, SafetyError, UnsupportedLayoutError
from recovery.events import EventSink, Notice, phase
from recovery.model.manifest import ImageManifest, PartitionImage
from recovery.sys import ntfs3g, ntfsresize
from recovery.units import MiB

GROW_MIN = 256 * MiB


@dataclass(frozen=True)
class LayoutChoice:
    """What the technician asked for: `mode` None fits when the sizes differ."""

    mode: LayoutMode | None = None
    system_size: int | None = None


def resizable_system(manifest: ImageManifest) -> PartitionImage | None:
    """The Windows volume, when it is NTFS and was captured (only that one is resized)."""
    for part in manifest.captured_partitions:
        if part.role == "system" and part.fs_type == "ntfs":
            return part
    return None


def needs_fitting(manifest: ImageManifest, target_size: int, choice: LayoutChoice) -> bool:
    """Fit when asked to, when the target is smaller, or when it is larger by enough to be
    worth growing Windows: a disk barely larger (another batch of the same model) keeps the
    exact layout, with no resize and no partition moved."""
    if choice.mode == "same":
        return False
    if choice.mode == "fit" or choice.system_size:
        return True
    old = manifest.table.disk_size
    return target_size < old or target_size - old >= grow_threshold(old)


def grow_threshold(disk_size: int) -> int:
    """Extra space from which a larger target grows Windows by default: 1 %, >= 256 MiB."""
    return max(GROW_MIN, disk_size // 100)


def system_needed(store: Path, manifest: ImageManifest, system: PartitionImage) -> int:
    """What `ntfsresize --info` says the image's Windows volume needs, read from the image
    through the FUSE view (nothing is written anywhere)."""
    # A sealed image never changes, and the TUI plans a restore for every disk listed.
    return _needed(str(store.resolve()), manifest.name, manifest.manifest_blake3,
                   system.number, system.size)


@lru_cache(maxsize=16)
def _needed(store: str, image: str, seal: str, number: int, size: int) -> int:
    with partition_view(ViewSpec(store, image, number, "", 0, 0, size)) as volume:
        return ntfsresize.info(volume).needed


def plan_layout(store: Path, manifest: ImageManifest, target_size: int,
                choice: LayoutChoice) -> tuple[FittedLayout | None, list[SafetyError]]:
    """The layout to write, or the refusal (too small, with the figure) as a gate refusal."""
    system = resizable_system(manifest)
    fitting = needs_fitting(manifest, target_size, choice)
    needed = system_needed(store, manifest, system) if system and fitting else 0
    request = FitRequest(manifest.table, target_size, system.number if system else None,
                         needed, "fit" if fitting else "same", choice.system_size)
    if fitting and system is None and choice.mode != "fit" and not choice.system_size \
            and target_size >= manifest.table.end_of_last_partition:
        request = replace(request, mode="same")  # nothing to resize: keep the layout
    try:
        return fit_layout(request), []
    except SafetyError as refusal:
        return None, [refusal]


def place(chunks: Iterator[PlacedChunk], layout: FittedLayout) -> Iterator[PlacedChunk]:
    """Chunks at their partition's new start; a shrunk partition's chunks clipped at its
    new end (and left out past it: the FUSE view serves that data to ntfsresize)."""
    for chunk in chunks:
        change = layout.change_of(chunk.partition)
        if change is None:
            yield chunk
            continue
        moved = replace(chunk, partition_offset=change.new_start)
        if chunk.span.start + chunk.span.length <= change.new_size:
            yield moved
            continue
        used = tuple((start, min(start + length, change.new_size) - start)
                     for start, length in chunk.span.used if start < change.new_size)
        if used:
            yield replace(moved, span=replace(chunk.span, used=used))


def is_clipped(chunk: PlacedChunk, layout: FittedLayout) -> bool:
    """A chunk written only in part (it straddles a shrunk partition's new end): the
    image's BLAKE3 of it cannot be checked on the disk, see as_written."""
    change = layout.change_of(chunk.partition)
    return change is not None and chunk.span.start + chunk.span.length > change.new_size


def as_written(chunk: PlacedChunk, content: memoryview) -> PlacedChunk:
    """A clipped chunk whose used ranges (below the new end) were just written from
    `content`: the same chunk with the BLAKE3 of what a read-back of it must find (those
    ranges, zeros elsewhere), so its written part is read back like every other chunk.
    `content` is the writer's buffer, done with: its unused bytes are zeroed in place."""
    _zero_unused(content, chunk.span)
    return replace(chunk, ref=chunk.ref._replace(digest=digest(content)))


def resize_system(target: Path, store: Path, manifest: ImageManifest, layout: FittedLayout,
                  events: EventSink) -> None:
    """Shrink (through the view) or grow the restored Windows volume to its new size."""
    change = layout.resized
    if change is None:
        return
    part = manifest.partition(change.number)
    if part.fs_type != "ntfs":
        raise UnsupportedLayoutError(f"Partition {part.number} is {part.fs_type}, not NTFS; "
                                     "only the NTFS Windows volume is resized.",
                                     "Restore the image's exact layout.",
                                     hint=Hint.LAYOUT_SAME)
    sector = manifest.table.sector_size
    verb = "Shrinking" if change.new_size < change.old_size else "Growing"
    with phase(events, "resize", f"{verb} Windows to {change.new_size // 10**6} MB", 1) as step:
        # Shrinking: the view's old-size volume reads past the new end from the image.
        # Growing: the new-size volume is all target. Either way ntfsresize writes only
        # through the view, which reads every block it wrote back from the disk.
        length = max(change.old_size, change.new_size)
        spec = ViewSpec(str(store), manifest.name, part.number, str(target),
                        change.new_start, change.new_size, length)
        with partition_view(spec) as volume:
            ntfsresize.resize(volume, change.new_size)
        with ntfs3g.volume_device(target, change.new_start, change.new_size,
                                  sector_size=sector) as volume:
            ntfsresize.check(volume)
        step.advance(1)
    events(Notice(f"Windows (partition {part.number}) {change.action()} from "
                  f"{change.old_size // 10**6} MB to {change.new_size // 10**6} MB; "
                  "ntfsresize --check passed."))
