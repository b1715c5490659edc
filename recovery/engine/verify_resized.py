"""verify --target after a restore that fitted the layout to a disk of another size.

The table must hold the image's identifiers; only the Windows partition may have another
size and only the partitions after it another start (what recovery/engine/fit.py makes).
Moved partitions are compared chunk for chunk at their new start; the resized Windows
volume by its file tree (recovery/engine/filetree.py).
"""

from __future__ import annotations

from dataclasses import replace

from recovery.engine.bootconfig import BCD_PATHS, REAGENT_PATHS
from recovery.engine.filetree import compare_trees, file_tree
from recovery.engine.resize import resizable_system
from recovery.model.layout import PartitionTable
from recovery.model.manifest import ImageManifest
from recovery.store.imageview import open_view
from recovery.store.index import ImageIndex
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import DeviceSlice

CHUNKS = "chunks"
MOVED = "chunks at the new offset"
FILE_TREE = "file tree (names, sizes, BLAKE3 of content, security descriptors)"


def expected_table(manifest: ImageManifest, actual: PartitionTable) -> PartitionTable:
    """The image's table with the places a fitted restore may legitimately have changed."""
    system = resizable_system(manifest)
    if system is None:
        return manifest.table
    have = {p.number: p for p in actual.partitions}
    parts = []
    for part in manifest.table.partitions:
        got = have.get(part.number)
        if got is not None and part.number == system.number:
            part = replace(part, size=got.size)
        elif got is not None and part.start > system.start and got.size == part.size:
            part = replace(part, start=got.start)
        parts.append(part)
    return replace(manifest.table, partitions=tuple(parts))


def boot_config_updated(manifest: ImageManifest, expected: PartitionTable) -> bool:
    """An MBR restore that moved partitions rewrote the BCD and ReAgent.xml files."""
    old = {p.number: p.start for p in manifest.table.partitions}
    return manifest.table.scheme == "mbr" and any(
        p.start != old.get(p.number, p.start) for p in expected.partitions)


def methods(manifest: ImageManifest, expected: PartitionTable) -> dict[int, str]:
    """How each captured partition is compared with the image."""
    new = {p.number: p for p in expected.partitions}
    boot_files = boot_config_updated(manifest, expected)
    found = {}
    for part in manifest.captured_partitions:
        placed = new.get(part.number)
        if placed is not None and (placed.size != part.size
                                   or (boot_files and part.fs_type == "ntfs")):
            found[part.number] = FILE_TREE
        elif placed is not None and placed.start != part.start:
            found[part.number] = MOVED
        else:
            found[part.number] = CHUNKS
    return found


def check_file_tree(device: BlockDevice, store: ChunkStore, manifest: ImageManifest,
                    index: ImageIndex, expected: PartitionTable, number: int) -> list[str]:
    placed = next(p for p in expected.partitions if p.number == number)
    where = f"partition {number}"
    with open_view(store, manifest.name, number, (manifest, index)) as image:
        want = file_tree(image, f"image {manifest.name}, {where}")
    got = file_tree(DeviceSlice(device, placed.start, placed.size), f"{device.path}, {where}")
    if boot_config_updated(manifest, expected):
        # Rewritten for the new partition offsets (recovery/engine/bootconfig.py).
        for parts in (*BCD_PATHS, *REAGENT_PATHS):
            path = "/" + "/".join(parts)
            for tree in (want, got):
                for name in [n for n in tree if n.lower() == path.lower()]:
                    tree[name] = replace(tree[name], size=0, content="updated for the move")
    return compare_trees(want, got, where)
