"""A generated Windows-like disk: what the demo, the tests and the benchmarks work on.

GPT layout as Windows Setup makes it on a UEFI PC (ESP, MSR, Windows, WinRE Recovery), or
the BIOS/MBR layout (active System Reserved, Windows, hidden 0x27 Recovery) with boot code
in LBA 0 and a boot loader in the post-MBR gap. The Windows volume carries real hives from
the shared fixtures when they are there, and files that compress and files that do not.
"""

from __future__ import annotations

import lzma
import random
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from recovery.engine.roles import BASIC_DATA, ESP, MSR, WINRE
from recovery.engine.table import write_table
from recovery.model.layout import PartitionTable, Scheme, TablePartition
from recovery.sys import dosfstools, mtools, ntfs3g
from recovery.units import MiB

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
HIVES = {"SYSTEM": "SYSTEM.xz", "SAM": "SAM.xz", "SECURITY": "SECURITY.xz"}


@dataclass(frozen=True)
class DemoDisk:
    path: Path
    table: PartitionTable
    windows: TablePartition  # the system volume
    hives_from_fixtures: bool


@dataclass(frozen=True)
class DiskSpec:
    scheme: Scheme = "gpt"
    sector_size: int = 512
    size: int = 1200 * MiB
    windows_size: int = 640 * MiB
    data_bytes: int = 160 * MiB  # written into the Windows volume
    seed: int = 7


def build_windows_disk(path: Path, spec: DiskSpec | None = None,
                       fixtures: Path | None = None) -> DemoDisk:
    spec = spec or DiskSpec()
    fixtures = fixtures or FIXTURES
    with open(path, "wb") as handle:
        handle.truncate(spec.size)
    rng = random.Random(spec.seed)
    table = _gpt_layout(spec, rng) if spec.scheme == "gpt" else _mbr_layout(spec, rng)
    write_table(path, table)
    by_role = {p.number: p for p in table.partitions}
    if spec.scheme == "gpt":
        _make_esp(path, by_role[1], spec, rng, fixtures)
        windows, recovery = by_role[3], by_role[4]
    else:
        _write_mbr_boot_code(path, table, rng)
        ntfs3g.mkntfs(path, by_role[1].start, by_role[1].size, label="System Reserved",
                      sector_size=spec.sector_size)
        windows, recovery = by_role[2], by_role[3]
    ntfs3g.mkntfs(path, windows.start, windows.size, label="Windows",
                  sector_size=spec.sector_size)
    from_fixtures = _fill_windows(path, windows, spec, rng, fixtures)
    ntfs3g.mkntfs(path, recovery.start, recovery.size, label="Recovery",
                  sector_size=spec.sector_size)
    _fill_files(path, recovery, {"Recovery/WindowsRE/winre.wim": rng.randbytes(24 * MiB)})
    return DemoDisk(path, table, windows, from_fixtures)


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def _gpt_layout(spec: DiskSpec, rng: random.Random) -> PartitionTable:
    # FAT32 needs 65525 clusters: Windows makes the ESP 260 MiB on 4Kn disks for that reason.
    esp_size = 100 * MiB if spec.sector_size == 512 else 260 * MiB
    sizes = [(esp_size, ESP, "EFI system partition", 0),
             (16 * MiB, MSR, "Microsoft reserved partition", 0),
             (spec.windows_size, BASIC_DATA, "Basic data partition", 0),
             (160 * MiB, WINRE, "", 0x8000000000000001)]
    parts, start = [], 1 * MiB
    for number, (size, type_id, name, attributes) in enumerate(sizes, start=1):
        parts.append(TablePartition(number, start, size, type_id, _guid(rng), name, attributes))
        start += size
    sector = spec.sector_size
    return PartitionTable("gpt", sector, spec.size, _guid(rng), tuple(parts),
                          first_usable_lba=34 if sector == 512 else 6,
                          last_usable_lba=(spec.size - 33 * 512) // sector - 1
                          if sector == 512 else spec.size // sector - 6)


def _mbr_layout(spec: DiskSpec, rng: random.Random) -> PartitionTable:
    reserved = TablePartition(1, 1 * MiB, 100 * MiB, "07", bootable=True)
    windows = TablePartition(2, reserved.end, spec.windows_size, "07")
    recovery = TablePartition(3, windows.end, 160 * MiB, "27")
    return PartitionTable("mbr", spec.sector_size, spec.size, f"{rng.getrandbits(32):08X}",
                          (reserved, windows, recovery))


def _write_mbr_boot_code(path: Path, table: PartitionTable, rng: random.Random) -> None:
    """Stand-ins for Windows' MBR code and a boot loader in the gap (GRUB-style)."""
    with open(path, "r+b") as disk:
        disk.seek(0)
        disk.write(b"\xfa\x33\xc0\x8e\xd0" + rng.randbytes(435))
        disk.seek(table.sector_size)
        disk.write(b"LOADER" + rng.randbytes(64 * 1024))


def _make_esp(path: Path, esp: TablePartition, spec: DiskSpec, rng: random.Random,
              fixtures: Path) -> None:
    dosfstools.mkfs_fat(path, esp.start, esp.size, fat_bits=32, sector_size=spec.sector_size,
                        sectors_per_cluster=1, label="SYSTEM")
    with tempfile.TemporaryDirectory() as staging:
        boot = Path(staging) / "Boot"
        boot.mkdir()
        (boot / "bootmgfw.efi").write_bytes(rng.randbytes(1536 * 1024))
        bcd = fixtures / "hives" / "BCD.xz"
        (boot / "BCD").write_bytes(lzma.decompress(bcd.read_bytes()) if bcd.exists()
                                   else rng.randbytes(32 * 1024))
        mtools.mmd(path, esp.start, "/EFI/Microsoft")
        mtools.mcopy(path, esp.start, [boot], "/EFI/Microsoft/")
        mtools.mmd(path, esp.start, "/EFI/Boot")
        fallback = Path(staging) / "bootx64.efi"
        fallback.write_bytes(rng.randbytes(1536 * 1024))
        mtools.mcopy(path, esp.start, [fallback], "/EFI/Boot/")


def _fill_windows(path: Path, windows: TablePartition, spec: DiskSpec, rng: random.Random,
                  fixtures: Path) -> bool:
    files: dict[str, bytes] = {}
    hive_dir = fixtures / "hives"
    from_fixtures = all((hive_dir / name).exists() for name in HIVES.values())
    for hive, name in HIVES.items():
        source = hive_dir / name
        files[f"Windows/System32/config/{hive}"] = (
            lzma.decompress(source.read_bytes()) if from_fixtures
            else b"regf" + rng.randbytes(256 * 1024))
    ntuser = hive_dir / "NTUSER.DAT.xz"
    if ntuser.exists():
        files["Users/Technician/NTUSER.DAT"] = lzma.decompress(ntuser.read_bytes())
    budget = spec.data_bytes
    number = 0
    while budget > 0:
        size = min(budget, rng.choice((64 * 1024, 512 * 1024, 3 * MiB, 9 * MiB)))
        if number % 3 == 2:  # logs and text: compressible
            line = f"{number:06d} Windows event log line, service started OK\n".encode()
            content = (line * (size // len(line) + 1))[:size]
            files[f"Windows/Logs/log{number:04d}.txt"] = content
        else:  # binaries: incompressible
            files[f"Windows/System32/drivers/drv{number:04d}.sys"] = rng.randbytes(size)
        budget -= size
        number += 1
    _fill_files(path, windows, files)
    return from_fixtures


def _fill_files(path: Path, volume: TablePartition, files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as mnt, \
            ntfs3g.mount(path, volume.start, Path(mnt), read_write=True, size=volume.size):
        for name, content in files.items():
            target = Path(mnt) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
