"""Test volumes made with the real tools: NTFS (mkntfs + ntfs-3g) and FAT (mkfs.fat +
mtools) inside image files at a non-zero offset, filled with files, some deleted."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from recovery.fs.ntfs import FIXUP_STRIDE, VOLUME_IS_DIRTY, NtfsReader, volume_info_offset
from recovery.model.extents import Extent
from recovery.sys import dosfstools, mtools, ntfs3g
from recovery.sys.blockdev import BlockDevice
from recovery.sys.run import run

MiB = 1024 * 1024
VOLUME_OFFSET = MiB  # where partitioning tools put the first partition


@dataclass(frozen=True)
class BuiltVolume:
    """A volume `size` bytes long at `offset` in the image file `image`."""

    image: Path
    offset: int
    size: int

    def open(self, writable: bool = False) -> BlockDevice:
        return BlockDevice.open(self.image, writable=writable)


def blank_image(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def make_ntfs(image: Path, size: int, *, offset: int = VOLUME_OFFSET, sector_size: int = 512,
              cluster_size: int | None = None, label: str = "") -> BuiltVolume:
    blank_image(image, offset + size + MiB)
    ntfs3g.mkntfs(image, offset, size, label=label, cluster_size=cluster_size,
                  sector_size=sector_size)
    return BuiltVolume(image, offset, size)


def make_fat(image: Path, size: int, fat_bits: int, *, offset: int = VOLUME_OFFSET,
             sector_size: int = 512, sectors_per_cluster: int | None = None,
             label: str = "") -> BuiltVolume:
    blank_image(image, offset + size + MiB)
    dosfstools.mkfs_fat(image, offset, size, fat_bits=fat_bits, sector_size=sector_size,
                        sectors_per_cluster=sectors_per_cluster, label=label)
    return BuiltVolume(image, offset, size)


def file_set(seed: int, count: int, max_size: int = 3 * MiB) -> dict[str, bytes]:
    """Files of awkward sizes (empty, sub-cluster, cluster edges, several MiB), half
    incompressible and half repetitive, the same for a given seed."""
    rng = random.Random(seed)
    edges = [0, 1, 700, 4095, 4096, 4097, 65536, 65537]
    files: dict[str, bytes] = {}
    for index in range(count):
        size = edges[index] if index < len(edges) else rng.randrange(1, max_size)
        if index % 2:
            data = rng.randbytes(size)
        else:
            data = (f"line {index} of a text file\n".encode() * (size // 20 + 1))[:size]
        files[f"dir{index % 3}/file{index:03d}.bin"] = data
    return files


def fill_ntfs(volume: BuiltVolume, mountpoint: Path, files: dict[str, bytes],
              delete: Iterable[str] = ()) -> None:
    """Write `files` through ntfs-3g, then delete `delete` (leaving holes in the free space)."""
    with ntfs3g.mount(volume.image, volume.offset, mountpoint, True, size=volume.size) as root:
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        for name in delete:
            (root / name).unlink()


def fragmented_ntfs(volume: BuiltVolume, mountpoint: Path, seed: int = 1) -> dict[str, bytes]:
    """Fill, delete every other file, fill again so that new files land in the holes."""
    first = file_set(seed, 24)
    doomed = list(first)[1::2]
    fill_ntfs(volume, mountpoint, first, doomed)
    second = {f"later/{name}": data for name, data in file_set(seed + 1, 12).items()}
    fill_ntfs(volume, mountpoint, second)
    kept = {name: data for name, data in first.items() if name not in doomed}
    return {**kept, **second}


def fill_fat(volume: BuiltVolume, staging: Path, files: dict[str, bytes],
             delete: Iterable[str] = ()) -> None:
    """Copy `files` in with mcopy (one tree at once), then delete `delete` with mdel."""
    staging.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    mtools.mcopy(volume.image, volume.offset, sorted(staging.iterdir()), "/")
    for name in delete:
        mtools.mdel(volume.image, volume.offset, "/" + name)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def set_ntfs_dirty(volume: BuiltVolume) -> None:
    """Set the dirty bit in $Volume's $VOLUME_INFORMATION, as Windows does when it finds
    errors or crashes, located with our own parser."""
    with volume.open(writable=True) as device:
        flags_at = volume_info_offset(device, volume.offset, volume.size)
        reader = NtfsReader(device, volume.offset, volume.size)
        within = (flags_at - volume.offset) % reader.boot.mft_record_size
        # The flags must not share bytes with an update-sequence slot, or the fixups would
        # hide the change.
        assert within % FIXUP_STRIDE < FIXUP_STRIDE - 4
        flags = int.from_bytes(device.read_at(flags_at, 2), "little") | VOLUME_IS_DIRTY
        # $MFTMirr holds a copy of records 0-3; ntfs-3g refuses volumes where they differ.
        mirror_shift = (reader.boot.mft_mirror_lcn - reader.boot.mft_lcn) * reader.boot.cluster_size
        for at in (flags_at, flags_at + mirror_shift):
            device.write_at(at, flags.to_bytes(2, "little"))
        device.flush()


def write_hiberfil(volume: BuiltVolume, mountpoint: Path, signature: bytes) -> None:
    """A hiberfil.sys whose header starts with `signature` (b"HIBR", b"wake", ...)."""
    with ntfs3g.mount(volume.image, volume.offset, mountpoint, True, size=volume.size) as root:
        (root / "hiberfil.sys").write_bytes(signature + b"\0" * (64 * 1024 - len(signature)))


def mark_bitlocker(volume: BuiltVolume) -> None:
    """Put BitLocker's OEM id where NTFS's stands, as an encrypted volume shows it."""
    with volume.open(writable=True) as device:
        device.write_at(volume.offset + 3, b"-FVE-FS-")
        device.flush()


def copy_extents(source: BuiltVolume, target_image: Path, extents: list[Extent]) -> BuiltVolume:
    """A blank image of the same size holding only `extents` of the source volume: what a
    used-blocks-only restore onto a zeroed disk produces."""
    blank_image(target_image, source.image.stat().st_size)
    with source.open() as reader, BlockDevice.open(target_image, writable=True) as writer:
        for start, length in extents:
            for done in range(0, length, 8 * MiB):
                chunk = min(8 * MiB, length - done)
                at = source.offset + start + done
                writer.write_at(at, reader.read_at(at, chunk))
        writer.flush()
    return BuiltVolume(target_image, source.offset, source.size)


def raw_fixture_volume(qcow2: Path, dest: Path) -> BuiltVolume:
    """A shared fixture volume converted to a raw image (the volume starts at byte 0)."""
    run(["qemu-img", "convert", "-O", "raw", str(qcow2), str(dest)])
    return BuiltVolume(dest, 0, dest.stat().st_size)
