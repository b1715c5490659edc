"""Partition tables: read with pyparted + raw headers, write with sgdisk/sfdisk, check with
the independent tools (sgdisk -p/-i/-v, sfdisk --dump) that every identifier came back."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from recovery.engine.devices import resolve_disk
from recovery.engine.safety import layout_refusals
from recovery.engine.table import (
    boot_areas,
    compare_tables,
    looks_like_partition,
    read_table,
    write_table,
)
from recovery.errors import (
    SafetyError,
    SectorSizeMismatchError,
    TargetTooSmallError,
    UnsupportedLayoutError,
)
from recovery.model.layout import PartitionTable
from recovery.sys import losetup
from recovery.sys.blockdev import BlockDevice
from recovery.sys.run import run, run_text

MakeLoop = Callable[..., tuple[Path, Path]]

MiB = 1024 * 1024
DISK = 64 * MiB
DISK_GUID = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
ESP, MSR = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
BASIC, WINRE = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"
# number, start MiB, size MiB, type, unique GUID, name, attributes
GPT_LAYOUT = [
    (1, 1, 16, ESP, "11111111-0000-4000-8000-000000000001", "EFI system partition", 0),
    (2, 17, 16, MSR, "11111111-0000-4000-8000-000000000002", "Microsoft reserved partition",
     0),
    (3, 33, 20, BASIC, "11111111-0000-4000-8000-000000000003", "Basic data partition", 0),
    (4, 53, 9, WINRE, "11111111-0000-4000-8000-000000000004", "Windows RE tools",
     0x8000000000000001),
]
MBR_SIGNATURE = "5EED1234"
# slot, start MiB, size MiB, type, active
MBR_LAYOUT = [(1, 1, 16, "7", True), (2, 17, 20, "27", False), (3, 40, 22, "f", False),
              (5, 41, 8, "7", False), (6, 50, 10, "7", False)]


def make_gpt(node: Path, sector: int) -> None:
    argv = ["sgdisk", "--set-alignment=1", f"--disk-guid={DISK_GUID}"]
    for number, start, size, type_guid, guid, name, attributes in GPT_LAYOUT:
        first = start * MiB // sector
        argv += [f"--new={number}:{first}:{first + size * MiB // sector - 1}",
                 f"--typecode={number}:{type_guid}", f"--partition-guid={number}:{guid}",
                 f"--change-name={number}:{name}"]
        if attributes:
            argv.append(f"--attributes={number}:=:{attributes:016x}")
    run([*argv, str(node)])


def make_mbr(node: Path, sector: int) -> None:
    lines = ["label: dos", f"label-id: 0x{MBR_SIGNATURE.lower()}", "unit: sectors", ""]
    for slot, start, size, type_id, active in MBR_LAYOUT:
        line = f"p{slot} : start={start * MiB // sector}, size={size * MiB // sector}, " \
               f"type={type_id}"
        lines.append(line + (", bootable" if active else ""))
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(node)],
        input_bytes="\n".join(lines).encode() + b"\n")


MAKERS = {"gpt": make_gpt, "mbr": make_mbr}


@contextmanager
def tool_node(path: Path, sector: int) -> Iterator[Path]:
    """sgdisk/sfdisk read image files as 512-byte-sector disks: 4K files need a loop."""
    if path.is_file() and sector != 512:
        with losetup.loop_device(path, sector_size=sector, read_only=True) as node:
            yield node
    else:
        yield path


def sgdisk_facts(node: Path, with_usable_range: bool = True,
                 numbers: tuple[int, ...] = (1, 2, 3, 4)) -> list[str]:
    printed = run_text(["sgdisk", "-p", str(node)]).splitlines()
    keep: tuple[str, ...] = ("Disk identifier", "Partition table holds")
    if with_usable_range:
        keep += ("First usable sector",)
    facts = [line for line in printed if line.startswith(keep)]
    for number in numbers:
        info = run_text(["sgdisk", "-i", str(number), str(node)]).splitlines()
        facts += [f"{number}: {line}" for line in info
                  if line.startswith(("Partition GUID code", "Partition unique GUID",
                                      "First sector", "Last sector", "Attribute flags",
                                      "Partition name"))]
    return facts


def sfdisk_facts(node: Path) -> list[str]:
    dump = run_text(["sfdisk", "--dump", str(node)]).splitlines()
    return [re.sub(r"^.*?(\d+)\s*:", r"part\1 :", line) for line in dump
            if line and not line.startswith("device:")]


def independent_facts(scheme: str, path: Path, sector: int, usable: bool = True) -> list[str]:
    with tool_node(path, sector) as node:
        return sgdisk_facts(node, usable) if scheme == "gpt" else sfdisk_facts(node)


def source_disk(make_loop: MakeLoop, scheme: str, sector: int) -> tuple[Path, Path]:
    image, node = make_loop(DISK, sector, "source.img")
    MAKERS[scheme](node, sector)
    return image, node


def read(path: Path, sector: int | None = None) -> PartitionTable:
    with BlockDevice.open(path, sector_size=sector) as device:
        return read_table(device)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- reading -----------------------------------------------------------------------------
@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
@pytest.mark.parametrize("sector", [512, 4096])
def test_reads_every_gpt_identifier(make_loop: MakeLoop, sector: int) -> None:
    _, node = source_disk(make_loop, "gpt", sector)
    table = read(node)
    assert (table.scheme, table.sector_size, table.disk_id) == ("gpt", sector, DISK_GUID)
    assert table.first_usable_lba == 2 + 128 * 128 // sector
    assert table.last_usable_lba == DISK // sector - 2 - 128 * 128 // sector
    assert (table.entry_count, table.entry_size) == (128, 128)
    found = [(p.number, p.start // MiB, p.size // MiB, p.type_id, p.guid, p.name, p.attributes)
             for p in table.partitions]
    assert found == GPT_LAYOUT
    assert {p.kind for p in table.partitions} == {"primary"}


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
@pytest.mark.parametrize("sector", [512, 4096])
def test_reads_mbr_with_logical_partitions(make_loop: MakeLoop, sector: int) -> None:
    _, node = source_disk(make_loop, "mbr", sector)
    table = read(node)
    assert (table.scheme, table.sector_size, table.disk_id) == ("mbr", sector, MBR_SIGNATURE)
    found = [(p.number, p.start // MiB, p.size // MiB, p.type_id, p.bootable, p.kind)
             for p in table.partitions]
    assert found == [(1, 1, 16, "07", True, "primary"), (2, 17, 20, "27", False, "primary"),
                     (3, 40, 22, "0F", False, "extended"), (5, 41, 8, "07", False, "logical"),
                     (6, 50, 10, "07", False, "logical")]
    assert [p.number for p in table.data_partitions()] == [1, 2, 5, 6]


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
@pytest.mark.parametrize("scheme", ["gpt", "mbr"])
@pytest.mark.parametrize("sector", [512, 4096])
def test_image_file_reads_like_its_disk_and_is_not_written(
        make_loop: MakeLoop, scheme: str, sector: int) -> None:
    image, node = source_disk(make_loop, scheme, sector)
    from_disk = read(node)
    before = sha256(image)
    # An image file has no sector size: it is found from the table and what it points at,
    # whatever size the file was opened with.
    for opened_as in (None, 512, 4096):
        assert read(image, opened_as) == from_disk
    assert sha256(image) == before


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_no_table_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "blank.img"
    with open(empty, "wb") as handle:
        handle.truncate(16 * MiB)
    with pytest.raises(UnsupportedLayoutError, match=r"No partition table on .*blank\.img"):
        read(empty)


@pytest.mark.parametrize("mkfs", [["mkfs.fat", "-F", "32"], ["mkntfs", "-F", "-Q", "-q"]])
def test_partition_given_as_disk_is_recognised(tmp_path: Path, mkfs: list[str]) -> None:
    volume = tmp_path / "volume.img"
    with open(volume, "wb") as handle:
        handle.truncate(64 * MiB)
    run([*mkfs, str(volume)])
    with BlockDevice.open(volume) as device:
        assert looks_like_partition(device)
        with pytest.raises(UnsupportedLayoutError,
                           match=r"file system \((FAT32|NTFS)\), not a partition table"):
            read_table(device)


def test_a_volume_formatted_by_windows_is_a_partition(tmp_path: Path, fixtures_dir: Path
                                                     ) -> None:
    volume = tmp_path / "windows-volume.raw"
    run(["qemu-img", "convert", "-O", "raw",
         str(fixtures_dir / "volumes" / "ntfs-windows-formatted.qcow2"), str(volume)])
    with BlockDevice.open(volume) as device:
        assert looks_like_partition(device)
        with pytest.raises(UnsupportedLayoutError,
                           match=r"file system \(NTFS\), not a partition table"):
            read_table(device)


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_a_real_disk_does_not_look_like_a_partition(make_loop: MakeLoop) -> None:
    _, node = source_disk(make_loop, "mbr", 512)
    with BlockDevice.open(node) as device:
        assert not looks_like_partition(device)


# --- writing -----------------------------------------------------------------------------
def make_target(make_loop: MakeLoop, tmp_path: Path, kind: str, size: int, sector: int
                ) -> Path:
    if kind == "loop":
        return make_loop(size, sector, "target.img")[1]
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(size)
    return target


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
@pytest.mark.parametrize("scheme", ["gpt", "mbr"])
@pytest.mark.parametrize("sector", [512, 4096])
@pytest.mark.parametrize("kind", ["file", "loop"])
@pytest.mark.parametrize("size", [DISK, 2 * DISK], ids=["same-size", "larger"])
def test_write_gives_back_every_identifier(make_loop: MakeLoop, tmp_path: Path, scheme: str,
                                          sector: int, kind: str, size: int) -> None:
    _, source = source_disk(make_loop, scheme, sector)
    table = read(source)
    target = make_target(make_loop, tmp_path, kind, size, sector)
    write_table(target, table)
    written = read(target, sector)
    assert compare_tables(table, written) == []
    same_size = size == DISK
    assert independent_facts(scheme, target, sector, same_size) == \
        independent_facts(scheme, source, sector, same_size)
    if scheme == "gpt" and not same_size:
        assert_backup_gpt_at_end(target, sector, size, written)


def assert_backup_gpt_at_end(target: Path, sector: int, size: int,
                             written: PartitionTable) -> None:
    last_lba = size // sector - 1
    assert written.last_usable_lba == last_lba - 1 - 128 * 128 // sector
    with tool_node(target, sector) as node:
        verified = run_text(["sgdisk", "-v", str(node)])
        printed = run_text(["sgdisk", "-p", str(node)])
    assert "No problems found" in verified
    assert f"last usable sector is {written.last_usable_lba}" in printed
    with BlockDevice.open(target, sector_size=sector) as device:
        backup = device.read_at(last_lba * sector, sector)
    assert backup[:8] == b"EFI PART"
    assert int.from_bytes(backup[24:32], "little") == last_lba


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_write_replaces_an_old_table_of_the_other_kind(make_loop: MakeLoop,
                                                       tmp_path: Path) -> None:
    _, source = source_disk(make_loop, "mbr", 512)
    table = read(source)
    target = make_target(make_loop, tmp_path, "file", DISK, 512)
    make_gpt(target, 512)
    write_table(target, table)
    assert compare_tables(table, read(target)) == []
    with BlockDevice.open(target) as device:
        assert device.read_at(DISK - 512, 8) != b"EFI PART"
        assert device.read_at(512, 8) != b"EFI PART"


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
@pytest.mark.parametrize("scheme", ["gpt", "mbr"])
def test_write_over_a_garbled_table(make_loop: MakeLoop, tmp_path: Path, scheme: str) -> None:
    """Disks come in for a restore because their table is damaged: that must not stop it."""
    _, source = source_disk(make_loop, scheme, 512)
    table = read(source)
    target = make_target(make_loop, tmp_path, "file", DISK, 512)
    make_gpt(target, 512)
    noise = hashlib.sha512(b"garbage").digest() * 64
    with open(target, "r+b") as handle:
        handle.write(noise[:446] + noise[:64] + b"\x55\xaa" + noise[:16 * 1024])
        handle.seek(DISK - 16 * 1024)
        handle.write(noise[: 16 * 1024])
    write_table(target, table)
    assert compare_tables(table, read(target)) == []


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_same_size_restore_keeps_an_unusual_usable_range(tmp_path: Path) -> None:
    """A GPT whose backup is not at the disk's end (disk grown after partitioning)."""
    source = tmp_path / "grown.img"
    with open(source, "wb") as handle:
        handle.truncate(DISK)
    make_gpt(source, 512)
    with open(source, "r+b") as handle:
        handle.truncate(DISK + 32 * MiB)
    table = read(source)
    assert table.last_usable_lba == DISK // 512 - 34
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(DISK + 32 * MiB)
    write_table(target, table)
    assert read(target).last_usable_lba == table.last_usable_lba
    assert independent_facts("gpt", target, 512) == independent_facts("gpt", source, 512)


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_names_with_colons_and_gaps_in_numbering_come_back(tmp_path: Path) -> None:
    source = tmp_path / "source.img"
    with open(source, "wb") as handle:
        handle.truncate(DISK)
    run(["sgdisk", "--new=2:2048:4095", "--new=5:8192:16383", "--change-name=2:Données",
         str(source)])
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "--part-label", str(source), "5",
         "Backup: D"])
    table = read(source)
    assert [(p.number, p.name) for p in table.partitions] == [(2, "Données"), (5, "Backup: D")]
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(DISK)
    write_table(target, table)
    assert compare_tables(table, read(target)) == []
    assert sgdisk_facts(target, numbers=(2, 5)) == sgdisk_facts(source, numbers=(2, 5))


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
@pytest.mark.parametrize("damage", [(512, bytes(512)), (512 + 56, b"\xff")],
                         ids=["header-wiped", "header-checksum-wrong"])
def test_damaged_primary_gpt_is_read_from_backup_without_repairing(
        make_loop: MakeLoop, damage: tuple[int, bytes]) -> None:
    image, node = source_disk(make_loop, "gpt", 512)
    intact = read(node)
    with open(image, "r+b") as handle:  # the loop device reads through the same page cache
        handle.seek(damage[0])
        handle.write(damage[1])
    before = sha256(image)
    assert read(image) == intact
    assert sha256(image) == before


def _layout_refusals(target: Path, table: PartitionTable) -> list[SafetyError]:
    """The gate's rules for writing `table` to `target` (write_table trusts them)."""
    return layout_refusals(resolve_disk(target), table.end_of_last_partition,
                           table.sector_size)


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_sector_size_mismatch_is_refused_before_writing(make_loop: MakeLoop,
                                                        tmp_path: Path) -> None:
    _, source = source_disk(make_loop, "gpt", 4096)
    table = read(source)
    image, target = make_loop(DISK, 512, "target.img")
    refusals = _layout_refusals(target, table)
    assert [type(r) for r in refusals] == [SectorSizeMismatchError]
    assert re.search(r"512-byte sectors.*4096-byte", refusals[0].title)
    # An image file has no sector size of its own: it takes the table's.
    assert _layout_refusals(image, table) == []
    assert image.read_bytes() == bytes(DISK)


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_too_small_target_is_refused(make_loop: MakeLoop, tmp_path: Path) -> None:
    _, source = source_disk(make_loop, "gpt", 512)
    table = read(source)
    target = make_target(make_loop, tmp_path, "file", 32 * MiB, 512)
    refusals = _layout_refusals(target, table)
    assert [type(r) for r in refusals] == [TargetTooSmallError]
    assert "too small" in refusals[0].title


# --- raw areas and comparison ------------------------------------------------------------
@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_boot_areas(make_loop: MakeLoop) -> None:
    _, mbr_disk = source_disk(make_loop, "mbr", 512)
    assert boot_areas(read(mbr_disk)) == [("mbr-boot-code", 0, 440),
                                          ("post-mbr-gap", 512, MiB - 512)]
    gpt_table = dataclasses.replace(read(mbr_disk), scheme="gpt")
    assert boot_areas(gpt_table) == [("mbr-boot-code", 0, 440)]
    huge_gap = dataclasses.replace(read(mbr_disk), partitions=tuple(
        dataclasses.replace(p, start=p.start + 40 * MiB) for p in read(mbr_disk).partitions))
    assert boot_areas(huge_gap)[1] == ("post-mbr-gap", 512, 16 * MiB)


@pytest.mark.root("loop devices (sgdisk, sfdisk on a disk)")
def test_compare_names_every_difference(make_loop: MakeLoop) -> None:
    _, node = source_disk(make_loop, "gpt", 512)
    expected = read(node)
    parts = list(expected.partitions)
    parts[2] = dataclasses.replace(parts[2], guid="22222222-0000-4000-8000-000000000003",
                                   attributes=1)
    actual = dataclasses.replace(expected, disk_id="33333333-0000-4000-8000-000000000000",
                                 partitions=tuple(parts[:3]))
    problems = compare_tables(expected, actual)
    assert problems == [
        f"disk: disk GUID differs: expected {DISK_GUID}, disk has "
        "33333333-0000-4000-8000-000000000000",
        "partition 3: GUID differs: expected 11111111-0000-4000-8000-000000000003, disk has "
        "22222222-0000-4000-8000-000000000003",
        "partition 3: attribute value differs: expected 0x0000000000000000, disk has "
        "0x0000000000000001",
        "partition 4 is missing (expected at byte 55574528, 9.4 MB)",
    ]
    mbr = dataclasses.replace(expected, scheme="mbr")
    assert compare_tables(expected, mbr) == [
        "partition table type differs: expected GPT, disk has MBR"]
