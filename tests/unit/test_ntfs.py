"""NTFS block maps against ntfsclone and partclone on real mkntfs/ntfs-3g volumes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from recovery.errors import UnsupportedLayoutError
from recovery.fs.ntfs import (
    MFT_RECORD_BITMAP,
    NtfsReader,
    apply_fixups,
    decode_runlist,
    parse_boot_sector,
    read_ntfs,
)
from recovery.model.extents import from_bitmap, normalise, total
from recovery.sys import ntfs3g, partclone
from tests.fsbuild import (
    BuiltVolume,
    MiB,
    copy_extents,
    fragmented_ntfs,
    make_ntfs,
    raw_fixture_volume,
    set_ntfs_dirty,
    tree_digest,
)

VARIANTS = [  # (logical sector size, cluster size)
    (512, 4096),
    (512, 512),
    (4096, 4096),
    (512, 65536),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: f"sector{v[0]}-cluster{v[1]}")
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[BuiltVolume, dict[str, bytes]]:
    sector_size, cluster_size = request.param
    work = tmp_path_factory.mktemp("ntfs")
    volume = make_ntfs(work / "disk.img", 300 * MiB, sector_size=sector_size,
                       cluster_size=cluster_size, label="DATA")
    files = fragmented_ntfs(volume, work / "mnt")
    return volume, files


@pytest.mark.root("loop devices (mkntfs, ntfsclone, partclone)")
def test_used_clusters_match_ntfsclone_and_partclone(
        filled: tuple[BuiltVolume, dict[str, bytes]]) -> None:
    volume, _ = filled
    with volume.open() as device:
        ntfs = read_ntfs(device, volume.offset, volume.size)
    boot = ntfs.boot
    clone = ntfs3g.ntfsclone_image(volume.image, volume.offset, volume.size)
    counted = partclone.partclone_count("ntfs", volume.image, volume.offset, volume.size)
    in_clusters = [e for e in ntfs.used if e[0] < boot.clusters * boot.cluster_size]
    assert clone.cluster_size == counted.block_size == boot.cluster_size
    assert clone.clusters == counted.blocks == boot.clusters
    assert total(in_clusters) == clone.used_bytes == counted.used_bytes
    assert len(ntfs.used) > 3  # deleted files left holes


@pytest.mark.root("loop devices (mkntfs, ntfsclone, partclone)")
def test_backup_boot_sector_is_used(filled: tuple[BuiltVolume, dict[str, bytes]]) -> None:
    volume, _ = filled
    with volume.open() as device:
        ntfs = read_ntfs(device, volume.offset, volume.size)
        boot = ntfs.boot
        backup_at = boot.backup_boot_offset
        assert ntfs.used[-1] == (backup_at, boot.bytes_per_sector)
        assert backup_at >= boot.clusters * boot.cluster_size
        primary = device.read_at(volume.offset, boot.bytes_per_sector)
        assert device.read_at(volume.offset + backup_at, boot.bytes_per_sector) == primary


@pytest.mark.root("loop devices (mkntfs, ntfsclone, partclone)")
def test_boot_sector_and_volume_agree_with_ntfsinfo(
        filled: tuple[BuiltVolume, dict[str, bytes]]) -> None:
    volume, _ = filled
    with volume.open() as device:
        ntfs = read_ntfs(device, volume.offset, volume.size)
    info = ntfs3g.ntfsinfo_volume(volume.image, volume.offset, volume.size)
    assert ntfs.label == info["Volume Name"] == "DATA"
    assert ntfs.boot.cluster_size == int(info["Cluster Size"])
    assert ntfs.boot.bytes_per_sector == int(info["Sector Size"])
    assert ntfs.boot.clusters == int(info["Volume Size in Clusters"])
    assert ntfs.boot.mft_record_size == int(info["MFT Record Size"])
    assert ntfs.boot.mft_lcn == int(info["LCN of Data Attribute for FILE_MFT"])
    assert ntfs.version == info["Volume Version"]
    assert not ntfs.dirty


@pytest.mark.root("loop devices (mkntfs, ntfsclone, partclone)")
def test_used_extents_alone_rebuild_the_volume(
        filled: tuple[BuiltVolume, dict[str, bytes]], tmp_path: Path) -> None:
    """Copy only the used extents onto zeros: ntfsclone's stream, ntfsfix and every file
    must be the same, which proves nothing the file system needs was left out."""
    volume, files = filled
    with volume.open() as device:
        used = read_ntfs(device, volume.offset, volume.size).used
    copy = copy_extents(volume, tmp_path / "copy.img", used)
    assert (ntfs3g.ntfsclone_image_hash(copy.image, copy.offset, copy.size)
            == ntfs3g.ntfsclone_image_hash(volume.image, volume.offset, volume.size))
    assert ntfs3g.ntfsfix_check(copy.image, copy.offset, copy.size).ok
    with ntfs3g.mount(copy.image, copy.offset, tmp_path / "mnt", False, size=copy.size) as root:
        found = tree_digest(root)
    assert len(found) == len(files)


@pytest.mark.root("loop devices (mkntfs, ntfsclone, partclone)")
def test_real_windows_volumes_match_ntfsclone(fixtures_dir: Path, tmp_path: Path) -> None:
    for name in ("ntfs-windows-formatted.qcow2", "ntfs-vss-2stores.qcow2"):
        volume = raw_fixture_volume(fixtures_dir / "volumes" / name, tmp_path / "v.raw")
        with volume.open() as device:
            ntfs = read_ntfs(device, 0, volume.size)
        clone = ntfs3g.ntfsclone_image(volume.image, 0, volume.size)
        assert total(ntfs.used) == clone.used_bytes + ntfs.boot.bytes_per_sector, name
        assert ntfs.used[-1] == (ntfs.boot.backup_boot_offset, ntfs.boot.bytes_per_sector)


@pytest.mark.root("loop devices (mkntfs, ntfsclone, partclone)")
def test_dirty_flag_is_read_and_matches_ntfsinfo(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB, label="DIRTY")
    set_ntfs_dirty(volume)
    with volume.open() as device:
        assert read_ntfs(device, volume.offset, volume.size).dirty
    info = ntfs3g.ntfsinfo_volume(volume.image, volume.offset, volume.size)
    assert "DIRTY" in info["Volume Flags"]
    ntfs3g.ntfsfix(volume.image, volume.offset, volume.size, clear_dirty=True)
    with volume.open() as device:
        assert not read_ntfs(device, volume.offset, volume.size).dirty


@pytest.mark.root("loop devices (mkntfs, ntfsclone, partclone)")
def test_torn_mft_record_is_refused(tmp_path: Path) -> None:
    volume = make_ntfs(tmp_path / "disk.img", 64 * MiB)
    with volume.open() as device:
        reader = NtfsReader(device, volume.offset, volume.size)
        record_at = (volume.offset + reader.boot.mft_lcn * reader.boot.cluster_size
                     + MFT_RECORD_BITMAP * reader.boot.mft_record_size)
        raw = bytearray(device.read_at(record_at, reader.boot.mft_record_size))
    apply_fixups(bytes(raw), "record")  # intact
    raw[510] ^= 0xFF  # a sector written without the rest of the record
    with pytest.raises(UnsupportedLayoutError, match="torn"):
        apply_fixups(bytes(raw), "record")


def test_runlist_decoding() -> None:
    # 0x18 clusters at LCN 0x5634, then 0x10 clusters 0x20 before that, then a sparse run
    runlist = bytes([0x21, 0x18, 0x34, 0x56, 0x11, 0x10, 0xE0, 0x01, 0x05, 0x00])
    assert decode_runlist(runlist) == [(0x5634, 0x18), (0x5634 - 0x20, 0x10), (None, 5)]


def test_not_ntfs_is_refused() -> None:
    with pytest.raises(UnsupportedLayoutError, match="no NTFS boot sector"):
        parse_boot_sector(b"\0" * 512)


def test_bitmap_runs_match_a_bit_by_bit_reading() -> None:
    """$Bitmap decoding (from_bitmap's fast paths: zero blocks, 0xFF runs, mixed bytes)
    against the obvious loop over every bit."""
    rng = random.Random(3)
    for trial in range(40):
        size = rng.randrange(1, 20_000) if trial % 8 else 70_000  # 64 KiB blocks
        data = bytearray(size)
        for _ in range(rng.randrange(0, 40)):
            start = rng.randrange(size)
            data[start: start + rng.randrange(1, 3000)] = rng.choice(
                [b"\xff" * 3000, rng.randbytes(3000), bytes([rng.randrange(256)]) * 3000])
        count = rng.randrange(0, size * 8 + 1)
        expected = [(bit, 1) for bit in range(count) if data[bit // 8] >> (bit % 8) & 1]
        assert from_bitmap(bytes(data), 1, count) == normalise(expected)
