"""Rescue capture of an MBR disk whose extended partition has an EBR that does not read
(faultyfs + loop): libparted stopped there and so did the capture (exit 11).

The disk: a primary NTFS partition and three logical NTFS partitions with files, laid out
by sfdisk as fdisk and Windows lay them out (each EBR 1 MiB before its partition, the next
EBR right after it). An unreadable EBR's partition is rebuilt from its boot sector and the
next EBR; the capture completes (exit 14), the manifest lists exactly the EBR sector, a
restore equals the source outside it, and the source is never written. When the boot
sector does not read either, the capture says which logical partitions were lost and what
to do.
"""

from __future__ import annotations

import json
import random
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from recovery.engine.table import write_table
from recovery.model import gpt
from recovery.model.layout import PartitionTable, TablePartition
from recovery.store.objects import ChunkStore
from recovery.sys import dosfstools, exfat, losetup, mtools, ntfs3g
from recovery.units import MiB
from tests.faults.conftest import LoopFactory, MountFactory, blank_disk, copy_disk
from tests.faults.faultyfs import Fault
from tests.faults.test_rescue import _assert_equal_outside, _cli, _sha256

SECTOR = 512
SIZE = 40 * MiB


@pytest.fixture(scope="module")
def logical_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PartitionTable]:
    path = tmp_path_factory.mktemp("ebr") / "logical.img"
    blank_disk(path, 200 * MiB)
    table = _logical_table(SECTOR, "07", "07", "5EB0C0DE")
    write_table(path, table)
    rng = random.Random(9)
    for part in table.data_partitions():
        ntfs3g.mkntfs(path, part.start, part.size, label=f"Data{part.number}")
        with tempfile.TemporaryDirectory() as mnt, \
                ntfs3g.mount(path, part.start, Path(mnt), read_write=True, size=part.size):
            for number in range(4):
                (Path(mnt) / f"file{number}.bin").write_bytes(rng.randbytes(2 * MiB))
    return path, table


def _logical_table(sector: int, first: str, logical: str, signature: str
                   ) -> PartitionTable:
    """200 MiB: primary partition 1 (type `first`), then an extended partition with three
    logical ones (type `logical`), each EBR 1 MiB before its partition."""
    parts = [TablePartition(1, MiB, SIZE, first, bootable=True),
             TablePartition(2, MiB + SIZE, 200 * MiB - MiB - SIZE, "0F", kind="extended")]
    parts += [TablePartition(5 + i, 2 * MiB + SIZE + i * (SIZE + MiB), SIZE, logical,
                             kind="logical") for i in range(3)]
    return PartitionTable("mbr", sector, 200 * MiB, signature, tuple(parts))


def _ebrs(path: Path, table: PartitionTable) -> list[int]:
    """The EBRs' byte offsets in chain order."""
    sector = table.sector_size
    extended = next(p for p in table.partitions if p.kind == "extended")
    entry = gpt.MbrEntry(2, False, 0x0F, extended.start // sector, extended.size // sector)
    found, lba = [], entry.start_lba
    with open(path, "rb") as disk:
        while True:
            found.append(lba * sector)
            disk.seek(lba * sector)
            ebr = gpt.parse_ebr(disk.read(sector), lba, entry, 0)
            assert ebr is not None
            if ebr.next_lba is None:
                return found
            lba = ebr.next_lba


def _layout(summary: dict[str, object]) -> list[tuple[int, int, int]]:
    parts = summary["partitions"]
    assert isinstance(parts, list)
    return [(p["number"], p["start"], p["size"]) for p in parts]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["first-ebr", "middle-ebr", "last-ebr"])
def test_logical_partition_behind_an_unreadable_ebr_is_rebuilt(
        which: int, logical_disk: tuple[Path, PartitionTable], tmp_path: Path,
        mount_faulty: MountFactory, loop_over: LoopFactory) -> None:
    _rebuilt_behind_a_bad_ebr(*logical_disk, which, "NTFS", tmp_path, mount_faulty, loop_over)


def _rebuilt_behind_a_bad_ebr(disk: Path, table: PartitionTable, which: int, name: str,
                              tmp_path: Path, mount_faulty: MountFactory,
                              loop_over: LoopFactory) -> None:
    """EBR `which` (chain order) does not read: its partition is rebuilt from its `name`
    boot sector, the rescue lists exactly that sector, the restore equals the source."""
    bad, sector = _ebrs(disk, table)[which], table.sector_size
    backing = copy_disk(disk, tmp_path / "source.img")
    before = _sha256(backing)
    faulty = mount_faulty(backing)
    source = loop_over(faulty.disk)
    faulty.arm(Fault("read", bad, bad + sector))
    store = tmp_path / "store"
    done = _cli("capture", str(source), "--store", str(store), "--rescue", "--json")
    assert done.returncode == 14, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["unreadable_bytes"] == sector
    assert _layout(summary) == [(p.number, p.start, p.size) for p in table.data_partitions()]
    lost = summary["disk_unreadable"]
    assert [(d["area"], d["offset"], d["length"]) for d in lost] == [("ebr", bad, sector)]
    number = 5 + which
    assert f"partition {number} was rebuilt from its {name} boot sector" in lost[0]["what"]
    manifest = ChunkStore.open(store).load_image(summary["image"])[0]
    assert [(d.area, d.offset) for d in manifest.disk_unreadable] == [("ebr", bad)]
    assert [p.number for p in manifest.table.partitions] == [1, 2, 5, 6, 7]
    assert manifest.table.sector_size == sector
    faulty.clear()

    target = blank_disk(tmp_path / "target.img", table.disk_size)
    restored = _cli("restore", "--store", str(store), summary["image"], str(target), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"{sector} bytes were unreadable" in restored.stdout
    checked = _cli("verify", "--store", str(store), summary["image"], "--target", str(target))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # A restore writes the EBR from the table: the same bytes as the source's.
    _assert_equal_outside(backing, target, [], zeroed=False)
    assert _sha256(backing) == before  # the source was never written


def test_logical_partitions_that_cannot_be_located_are_named(
        logical_disk: tuple[Path, PartitionTable], tmp_path: Path,
        mount_faulty: MountFactory, loop_over: LoopFactory) -> None:
    disk, table = logical_disk
    bad = _ebrs(disk, table)[1]
    boot = next(p for p in table.partitions if p.number == 6).start
    backing = copy_disk(disk, tmp_path / "source.img")
    faulty = mount_faulty(backing)
    source = loop_over(faulty.disk)
    faulty.arm(Fault("read", bad, bad + SECTOR), Fault("read", boot, boot + SECTOR))
    store = tmp_path / "store"
    done = _cli("capture", str(source), "--store", str(store), "--rescue", "--json")
    assert done.returncode == 14, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert [n for n, _start, _size in _layout(summary)] == [1, 5]
    lost = summary["disk_unreadable"]
    assert [(d["area"], d["offset"], d["length"]) for d in lost] == [("ebr", bad, SECTOR)]
    assert "logical partition 6" in lost[0]["what"]
    assert "could not be located" in lost[0]["what"]
    assert "ddrescue" in lost[0]["restore"] and "testdisk" in lost[0]["restore"]
    text = _cli("images", "--store", str(store)).stdout
    assert "could not be located" in text



@pytest.fixture(scope="module", params=["fat32", "exfat"])
def fat_logical_disk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                     ) -> tuple[Path, PartitionTable, str]:
    """A primary FAT32 partition and three logical ones of `request.param` (FAT32 with
    files, or exFAT as mkfs.exfat leaves it), laid out as the NTFS disk above."""
    kind = request.param
    path = tmp_path_factory.mktemp(f"ebr-{kind}") / "logical.img"
    blank_disk(path, 200 * MiB)
    type_id = "0C" if kind == "fat32" else "07"
    table = _logical_table(SECTOR, "0C", type_id, "5EB0FA70")
    write_table(path, table)
    rng = random.Random(10)
    for part in table.data_partitions():
        if part.number > 1 and kind == "exfat":
            exfat.mkfs_exfat(path, part.start, part.size, label=f"DATA{part.number}")
            continue
        dosfstools.mkfs_fat(path, part.start, part.size, fat_bits=32, sectors_per_cluster=1,
                            label=f"DATA{part.number}")
        with tempfile.TemporaryDirectory() as staging:
            files = [Path(staging) / f"file{number}.bin" for number in range(4)]
            for file in files:
                file.write_bytes(rng.randbytes(2 * MiB))
            mtools.mcopy(path, part.start, files)
    return path, table, kind


def test_fat_and_exfat_logical_partition_behind_an_unreadable_ebr_is_rebuilt(
        fat_logical_disk: tuple[Path, PartitionTable, str], tmp_path: Path,
        mount_faulty: MountFactory, loop_over: LoopFactory) -> None:
    """The middle EBR of a chain of FAT32 (or exFAT) logical partitions does not read:
    partition 6 is rebuilt from its FAT32 (exFAT) boot sector, 7 is read from the next EBR
    (exFAT was not recognised: 6 and 7 were not located)."""
    disk, table, kind = fat_logical_disk
    name = {"fat32": "FAT32", "exfat": "exFAT"}[kind]
    _rebuilt_behind_a_bad_ebr(disk, table, 1, name, tmp_path, mount_faulty, loop_over)


def test_4k_sector_mbr_disk_logical_partition_behind_an_unreadable_ebr_is_rebuilt(
        tmp_path: Path, mount_faulty: MountFactory) -> None:
    """A 4Kn disk (4096-byte logical sectors, as some USB bridges and new drives report):
    EBRs, gaps and the rebuilt entry count in 4096-byte sectors."""
    sector = 4096
    path = blank_disk(tmp_path / "logical4k.img", 200 * MiB)
    table = _logical_table(sector, "07", "07", "5EB04C00")
    write_table(path, table)
    for part in table.data_partitions():
        ntfs3g.mkntfs(path, part.start, part.size, label=f"Data{part.number}",
                      sector_size=sector)
    with ExitStack() as stack:
        def four_k(image: Path) -> Path:
            return stack.enter_context(losetup.loop_device(image, sector_size=sector))
        _rebuilt_behind_a_bad_ebr(path, table, 1, "NTFS", tmp_path, mount_faulty, four_k)
