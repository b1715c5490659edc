"""FAT12/16/32 block maps against fsck.fat and partclone.fat on real mkfs.fat volumes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from recovery.errors import UnsupportedLayoutError
from recovery.fs.fat import FatVolume, cluster_in_use, parse_boot_sector, read_fat
from recovery.sys import dosfstools, mtools, partclone
from tests.fsbuild import BuiltVolume, MiB, copy_extents, file_set, fill_fat, make_fat


@dataclass(frozen=True)
class Variant:
    fat_bits: int
    size: int
    sector_size: int
    sectors_per_cluster: int | None
    max_file: int

    def __str__(self) -> str:
        return (f"fat{self.fat_bits}-sector{self.sector_size}"
                f"-spc{self.sectors_per_cluster or 'default'}")


VARIANTS = [
    Variant(12, 8 * MiB, 512, None, 400_000),
    Variant(12, 12 * MiB, 4096, 1, 600_000),
    Variant(16, 128 * MiB, 512, 8, 3 * MiB),
    Variant(16, 64 * MiB, 4096, 1, 2 * MiB),
    Variant(32, 300 * MiB, 512, 8, 3 * MiB),
    Variant(32, 64 * MiB, 512, 1, 2 * MiB),
    Variant(32, 300 * MiB, 4096, 1, 3 * MiB),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=str)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Variant, BuiltVolume, dict[str, bytes]]:
    variant: Variant = request.param
    work = tmp_path_factory.mktemp("fat")
    volume = make_fat(work / "disk.img", variant.size, variant.fat_bits,
                      sector_size=variant.sector_size,
                      sectors_per_cluster=variant.sectors_per_cluster, label="ESP")
    files = file_set(variant.fat_bits, 18, variant.max_file)
    doomed = list(files)[1::2]
    fill_fat(volume, work / "first", files, doomed)
    later = {f"later/{name}": data for name, data in file_set(7, 6, variant.max_file).items()}
    fill_fat(volume, work / "second", later)
    kept = {name: data for name, data in files.items() if name not in doomed}
    return variant, volume, {**kept, **later}


def _read(volume: BuiltVolume) -> FatVolume:
    with volume.open() as device:
        return read_fat(device, volume.offset, volume.size)


def test_type_and_geometry_follow_mkfs(filled: tuple[Variant, BuiltVolume, dict[str, bytes]]
                                       ) -> None:
    variant, volume, _ = filled
    fat = _read(volume)
    assert fat.boot.fat_type == f"fat{variant.fat_bits}"
    assert fat.boot.bytes_per_sector == variant.sector_size
    assert fat.boot.label == "ESP"
    if variant.sectors_per_cluster:
        assert fat.boot.sectors_per_cluster == variant.sectors_per_cluster
    assert fat.used[0][0] == 0 and fat.used[0][1] >= fat.boot.data_offset
    assert len(fat.used) > 2  # deleted files left holes


@pytest.mark.root("loop devices (mkfs.fat, partclone)")
def test_used_bytes_match_fsck_fat(filled: tuple[Variant, BuiltVolume, dict[str, bytes]]
                                   ) -> None:
    _, volume, _ = filled
    fat = _read(volume)
    report = dosfstools.fsck_fat(volume.image, volume.offset, volume.size)
    assert report.ok, report.output
    boot = fat.boot
    assert report.total_clusters == boot.clusters
    data_end = boot.data_offset + boot.clusters * boot.cluster_size
    tail = boot.total_sectors * boot.bytes_per_sector - data_end
    assert fat.used_bytes == boot.data_offset + report.used_clusters * boot.cluster_size + tail


@pytest.mark.root("loop devices (mkfs.fat, partclone)")
def test_used_bytes_match_partclone(filled: tuple[Variant, BuiltVolume, dict[str, bytes]]
                                    ) -> None:
    variant, volume, _ = filled
    if variant.fat_bits == 12:
        # partclone 0.3.23 over-counts FAT12 clusters (fsck.fat and our count agree on
        # the files' sizes); the fsck.fat comparison covers FAT12.
        pytest.skip("partclone.fat miscounts FAT12")
    counted = partclone.partclone_count("fat", volume.image, volume.offset, volume.size)
    assert _read(volume).used_bytes == counted.used_bytes


@pytest.mark.root("loop devices (mkfs.fat, partclone)")
def test_used_extents_alone_rebuild_the_volume(
        filled: tuple[Variant, BuiltVolume, dict[str, bytes]], tmp_path: Path) -> None:
    _, volume, files = filled
    copy = copy_extents(volume, tmp_path / "copy.img", _read(volume).used)
    assert dosfstools.fsck_fat(copy.image, copy.offset, copy.size).ok
    for name, data in files.items():
        assert mtools.mtype(copy.image, copy.offset, "/" + name) == data, name


def test_fat12_entries_are_unpacked() -> None:
    # entries 0..3: media/reserved, then cluster 2 = 0x000 (free), cluster 3 = 0xFFF (EOC)
    fat = bytes([0xF8, 0xFF, 0xFF, 0x00, 0xF0, 0xFF])
    assert cluster_in_use(fat, "fat12", 2) == [(1, 1)]


def test_fat32_reserved_top_nibble_is_ignored() -> None:
    fat = b"\xf8\xff\xff\x0f\xff\xff\xff\x0f" + b"\x00\x00\x00\xf0" + b"\x05\x00\x00\x00"
    assert cluster_in_use(fat, "fat32", 2) == [(1, 1)]


def test_ntfs_and_blank_are_not_fat() -> None:
    ntfs = bytearray(512)
    ntfs[0:11] = b"\xebR\x90NTFS    "
    ntfs[510:512] = b"\x55\xaa"
    for data in (bytes(512), bytes(ntfs)):
        with pytest.raises(UnsupportedLayoutError, match="no FAT boot sector"):
            parse_boot_sector(data)


@pytest.mark.parametrize(("fat_bits", "size", "sectors_per_cluster"),
                         [(12, 8 * MiB, 8), (16, 64 * MiB, 4), (32, 64 * MiB, 1)])
def test_root_directory_label_is_what_windows_shows(tmp_path: Path, fat_bits: int, size: int,
                                                    sectors_per_cluster: int) -> None:
    volume = make_fat(tmp_path / "disk.img", size, fat_bits,
                      sectors_per_cluster=sectors_per_cluster, label="BOOTDISK")
    extended = 0x40 if fat_bits == 32 else 0x24
    with volume.open(writable=True) as device:  # a tool that renamed only the boot sector
        device.write_at(volume.offset + extended + 7, b"STALE      ")
    fat = _read(volume)
    assert (fat.label, fat.boot.label) == ("BOOTDISK", "STALE")
