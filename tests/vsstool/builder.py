"""Build NTFS volume images that carry Volume Shadow Copy stores with chosen file versions.

Windows cannot run here, so this does what the VSS provider does, offline:
1. mkntfs a volume, pre-allocate the catalog and one store file per snapshot in
   `System Volume Information` (zero-filled, so they never differ between states);
2. for every snapshot, apply its file changes through ntfs-3g and keep a copy of the
   volume as it was at that moment;
3. apply the current state;
4. for each snapshot, every 16 KiB block that differs from the next state is copied into
   that snapshot's store (copy-on-write, as Windows does), described by a block list, and
   the catalog plus the volume header at 0x1e00 are written raw.
Reading an older store falls through to newer stores and then the volume, exactly as in
libvshadow's "Reading snapshot data".
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

import pyfsntfs

from recovery.sys import ntfs3g
from tests.vsstool import vssformat as fmt

SVI = "System Volume Information"
CATALOG_NAME = "{" + str(fmt.VSS_IDENTIFIER) + "}"
CHURN_BYTES = 4 * 1024 * 1024  # MFT, bitmap and $LogFile blocks touched by a change


@dataclass(frozen=True)
class Snapshot:
    """Changes applied to the volume just before this shadow copy is taken."""

    created: datetime
    files: dict[str, bytes | None]  # "Windows/System32/config/SYSTEM" -> content; None deletes


@dataclass
class BuiltVolume:
    image: Path
    size: int
    store_ids: list[uuid.UUID] = field(default_factory=list)
    shadow_copy_ids: list[uuid.UUID] = field(default_factory=list)
    changed_blocks: list[int] = field(default_factory=list)  # per store


def apply_files(root: Path, files: dict[str, bytes | None]) -> None:
    for relative, content in files.items():
        path = root / PurePosixPath(relative)
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)


def _store_capacity(later_changes: list[dict[str, bytes | None]]) -> int:
    data = sum(len(c or b"") for changes in later_changes for c in changes.values())
    data_blocks = (data + CHURN_BYTES) // fmt.BLOCK + 1
    list_blocks = data_blocks // fmt.DESCRIPTORS_PER_BLOCK + 1
    # Header, range list and bitmap, plus slack for 16 KiB slots split by fragmentation.
    return (data_blocks * 5 // 4 + list_blocks + 8) * fmt.BLOCK


def build_vss_volume(image: Path, size: int, snapshots: list[Snapshot],
                     current: dict[str, bytes | None], workdir: Path) -> BuiltVolume:
    """Create `image` (a volume image of `size` bytes) with one store per snapshot."""
    with open(image, "wb") as handle:
        handle.truncate(size)
    ntfs3g.mkntfs(image, 0, size, cluster_size=4096, label="Windows")
    built = BuiltVolume(image, size)
    built.store_ids = [uuid.uuid1() for _ in snapshots]
    built.shadow_copy_ids = [uuid.uuid4() for _ in snapshots]
    later = [s.files for s in snapshots[1:]] + [current]
    states: list[Path] = []
    mountpoint = workdir / "vss-build-mnt"
    for index, snapshot in enumerate(snapshots):
        with ntfs3g.mount(image, 0, mountpoint, True, size=size) as root:
            if index == 0:
                _preallocate(root, built.store_ids, [_store_capacity(later[i:]) for i in
                                                     range(len(snapshots))])
            apply_files(root, snapshot.files)
        state = workdir / f"vss-state-{index}.img"
        shutil.copyfile(image, state)
        states.append(state)
    with ntfs3g.mount(image, 0, mountpoint, True, size=size) as root:
        apply_files(root, current)
    if snapshots:
        _write_vss(built, snapshots, states)
    for state in states:
        state.unlink()
    return built


def _preallocate(root: Path, store_ids: list[uuid.UUID], capacities: list[int]) -> None:
    folder = root / SVI
    folder.mkdir(exist_ok=True)
    (folder / CATALOG_NAME).write_bytes(bytes(fmt.BLOCK))
    for store_id, capacity in zip(store_ids, capacities, strict=True):
        with open(folder / _store_name(store_id), "wb") as handle:
            for _ in range(capacity // fmt.BLOCK):
                handle.write(bytes(fmt.BLOCK))


def _store_name(store_id: uuid.UUID) -> str:
    return "{" + str(store_id) + "}" + CATALOG_NAME


@dataclass(frozen=True)
class _FileMap:
    file_reference: int
    extents: list[tuple[int, int]]  # (volume offset, size) in file order

    def slots(self) -> list[tuple[int, int]]:
        """(relative, volume) offsets of every 16 KiB piece that is contiguous on disk."""
        found, relative = [], 0
        for start, length in self.extents:
            first = -relative % fmt.BLOCK
            for inner in range(first, length - fmt.BLOCK + 1, fmt.BLOCK):
                found.append((relative + inner, start + inner))
            relative += length
        return found


def _file_map(volume: pyfsntfs.volume, name: str) -> _FileMap:
    entry = volume.get_file_entry_by_path(f"\\{SVI}\\{name}")
    extents = []
    for index in range(entry.number_of_extents):
        offset, length, _flags = entry.get_extent(index)
        extents.append((offset, length))
    return _FileMap(entry.file_reference, extents)


def _write_vss(built: BuiltVolume, snapshots: list[Snapshot], states: list[Path]) -> None:
    volume = pyfsntfs.volume()
    volume.open(str(built.image))
    catalog = _file_map(volume, CATALOG_NAME)
    stores = [_file_map(volume, _store_name(s)) for s in built.store_ids]
    volume.close()
    set_id = uuid.uuid4()
    entries = b""
    fd = os.open(built.image, os.O_RDWR)
    try:
        for index, (snapshot, files) in enumerate(zip(snapshots, stores, strict=True)):
            newer = states[index + 1] if index + 1 < len(states) else built.image
            location, changed = _write_store(fd, files, built.store_ids[index],
                                             built.shadow_copy_ids[index], set_id,
                                             states[index], newer)
            built.changed_blocks.append(changed)
            entries += fmt.catalog_entries(built.size, index + 1, snapshot.created, location)
        catalog_offset = catalog.slots()[0][1]
        os.pwrite(fd, fmt.catalog_block(catalog_offset, entries), catalog_offset)
        os.pwrite(fd, fmt.volume_header(catalog_offset, uuid.uuid1()),
                  fmt.VOLUME_HEADER_OFFSET)
        os.fsync(fd)
    finally:
        os.close(fd)


def _changed_blocks(older: Path, newer: Path) -> list[tuple[int, bytes]]:
    """(offset, older content) of each 16 KiB block that differs."""
    changed = []
    with open(older, "rb") as a, open(newer, "rb") as b:
        offset = 0
        while True:
            old, new = a.read(fmt.BLOCK), b.read(fmt.BLOCK)
            if not old:
                break
            if old != new:
                changed.append((offset, old))
            offset += fmt.BLOCK
    return changed


def _write_store(fd: int, files: _FileMap, store_id: uuid.UUID, copy_id: uuid.UUID,
                 set_id: uuid.UUID, older: Path, newer: Path
                 ) -> tuple[fmt.StoreLocation, int]:
    changed = _changed_blocks(older, newer)
    slots = files.slots()
    list_count = len(changed) // fmt.DESCRIPTORS_PER_BLOCK + 1
    header_slot, list_slots = slots[0], slots[1:1 + list_count]
    range_slot, bitmap_slot = slots[1 + list_count], slots[2 + list_count]
    data_slots = slots[3 + list_count:]
    if len(changed) > len(data_slots):
        raise AssertionError(f"store too small: {len(changed)} blocks changed, "
                             f"{len(data_slots)} slots")
    descriptors = []
    for (original, content), (relative, volume_offset) in zip(changed, data_slots,
                                                              strict=False):
        os.pwrite(fd, content, volume_offset)
        descriptors.append(fmt.descriptor(original, relative, volume_offset))
    blocks = fmt.chained_blocks(fmt.RECORD_BLOCK_LIST, descriptors,
                                fmt.DESCRIPTORS_PER_BLOCK, list_slots)
    ranges = []
    relative = 0
    for start, length in files.extents:
        ranges.append(fmt.range_entry(start, relative, length))
        relative += length
    blocks += fmt.chained_blocks(fmt.RECORD_RANGE_LIST, ranges, fmt.RANGES_PER_BLOCK,
                                 [range_slot])
    blocks.append((bitmap_slot[1], fmt.bitmap_block(*bitmap_slot)))
    blocks.append((header_slot[1], fmt.store_header_block(header_slot[1], copy_id, set_id)))
    for offset, body in blocks:
        os.pwrite(fd, body, offset)
    location = fmt.StoreLocation(store_id, header_slot[1], list_slots[0][1], range_slot[1],
                                 bitmap_slot[1], files.file_reference)
    return location, len(changed)
