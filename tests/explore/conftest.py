"""A captured PC to open without restoring: a GPT disk with a FAT32 ESP and an NTFS volume
written through ntfs-3g (many files, deep folders, Unicode names, alternate data streams,
sparse and compressed files, names FAT cannot hold), captured into a store."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.roles import BASIC_DATA, ESP
from recovery.engine.table import write_table
from recovery.model.layout import PartitionTable, TablePartition
from recovery.sys import dosfstools, losetup, mtools, ntfs3g
from recovery.sys.run import run
from recovery.units import MiB

MTIME_NS = 1_600_000_000_123_456_700  # 2020-09-13, with sub-second ticks NTFS keeps
STREAM = b"[ZoneTransfer]\r\nZoneId=3\r\n"
ESP_FILES = {"EFI/Microsoft/Boot/BCD": b"regf" + bytes(range(256)) * 40,
             "EFI/Microsoft/Boot/bootmgfw.efi": random.Random(3).randbytes(300 * 1024),
             "EFI/Boot/Long File Name Ünïcode.txt": b"long name\n" * 500}


@dataclass(frozen=True)
class CapturedPc:
    disk: Path
    store: Path
    ntfs_files: dict[str, bytes]  # path in the volume -> content (main stream)
    sparse: str
    esp_files: dict[str, bytes]


def ntfs_content(rng: random.Random) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for number in range(600):  # many files in one folder
        files[f"Many/file{number:04d}.txt"] = f"file {number}\n".encode() * (number % 7)
    deep = "/".join(f"level{n:02d}" for n in range(24))
    files[f"Deep/{deep}/bottom.txt"] = b"at the bottom\n"
    files["Users/Bob/Documents/Ünïcödé 日本語 📷.txt"] = "héllo wörld\n".encode() * 99
    files["Users/Bob/Documents/report.docx"] = rng.randbytes(3 * MiB + 17)
    files["Users/Bob/Pictures/holiday.jpg"] = rng.randbytes(5 * MiB)
    files["Users/Bob/Documents/colon:name.txt"] = b"a colon in the name\n"
    files["Users/Bob/Documents/trailing dot."] = b"trailing dot\n"
    files["Users/Bob/Documents/Same.txt"] = b"upper case\n"
    files["Users/Bob/Documents/same.txt"] = b"lower case\n"
    files["Compressed/big.log"] = b"a very compressible log line\n" * 60000
    files["empty.txt"] = b""
    return files


def _layout(size: int) -> PartitionTable:
    esp = TablePartition(1, MiB, 100 * MiB, ESP, name="EFI system partition")
    data = TablePartition(2, esp.end, size - esp.end - 2 * MiB, BASIC_DATA,
                          name="Basic data partition")
    return PartitionTable("gpt", 512, size, "", (esp, data))


def _fill_ntfs(disk: Path, part: TablePartition, files: dict[str, bytes], mnt: Path,
               sparse: str) -> None:
    with ntfs3g.mount(disk, part.start, mnt, True, size=part.size) as root:
        (root / "Compressed").mkdir()
        # FILE_ATTRIBUTE_COMPRESSED on the folder: ntfs-3g compresses what is written in it.
        os.setxattr(root / "Compressed", "system.ntfs_attrib_be", (0x800).to_bytes(4, "big"))
        for name, data in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        os.setxattr(root / "Users/Bob/Documents/report.docx", "user.Zone.Identifier", STREAM)
        with open(root / sparse, "wb") as handle:
            handle.seek(40 * MiB)
            handle.write(b"end of a sparse file")
        for path in root.rglob("*"):
            os.utime(path, ns=(MTIME_NS, MTIME_NS))


def build_pc(folder: Path, size: int = 400 * MiB) -> CapturedPc:
    disk = folder / "pc.img"
    with open(disk, "wb") as handle:
        handle.truncate(size)
    table = _layout(size)
    write_table(disk, table)
    esp, data = table.partitions
    dosfstools.mkfs_fat(disk, esp.start, esp.size, fat_bits=32, sectors_per_cluster=1,
                        label="SYSTEM")
    staging = folder / "esp"
    for name, content in ESP_FILES.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(content)
    mtools.mcopy(disk, esp.start, [staging / "EFI"], "/")
    ntfs3g.mkntfs(disk, data.start, data.size, label="Windows")
    files = ntfs_content(random.Random(11))
    sparse = "Users/Bob/sparse.vhd"
    _fill_ntfs(disk, data, files, folder / "mnt", sparse)
    store = folder / "store"
    capture(CaptureRequest(disk, store, name="first"))
    return CapturedPc(disk, store, files, sparse, ESP_FILES)


@contextmanager
def read_only_bind(source: Path, target: Path) -> Iterator[Path]:
    """`source` seen read-only at `target`, as a store on a write-protected stick."""
    target.mkdir(parents=True, exist_ok=True)
    run(["mount", "--bind", str(source), str(target)])
    try:
        run(["mount", "-o", "remount,bind,ro", str(target)])
        yield target
    finally:
        run(["umount", str(target)], check=False)


@pytest.fixture(scope="session")
def pc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CapturedPc]:
    built = build_pc(tmp_path_factory.mktemp("pc"))
    yield built


# Module scope: a read-only mount left for the whole session would be listed by the TUI's
# store scan in later test folders (tests/tui/test_store_mounts.py counts what it finds).
@pytest.fixture(scope="module")
def ro_store(pc: CapturedPc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with read_only_bind(pc.store, tmp_path_factory.mktemp("ro") / "store") as store:
        yield store


@contextmanager
def exfat_folder(image: Path, mountpoint: Path, size: int = 64 * MiB) -> Iterator[Path]:
    """A freshly formatted exFAT file system (a customer's stick) mounted at `mountpoint`
    with exfat-fuse: this host kernel has neither vfat nor exfat."""
    with open(image, "wb") as handle:
        handle.truncate(size)
    run(["mkfs.exfat", str(image)])
    mountpoint.mkdir(parents=True, exist_ok=True)
    with losetup.loop_device(image) as device:
        run(["mount.exfat-fuse", str(device), str(mountpoint)])
        try:
            yield mountpoint
        finally:
            subprocess.run(["umount", str(mountpoint)], check=False)


def damaged_copy(store: Path, dest: Path, digest: bytes) -> Path:
    """A copy of `store` (chunks hard-linked) whose chunk `digest` has one byte flipped."""
    shutil.copytree(store, dest, copy_function=os.link)
    name = digest.hex()
    chunk = dest / "chunks" / name[:2] / name
    data = bytearray(chunk.read_bytes())
    chunk.unlink()  # the original store shares the inode
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    return dest
