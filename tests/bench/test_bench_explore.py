"""Opening an image without restoring it (run with `pytest -m bench -s`); prints numbers.

- Listing a folder of 100,000 files: the first time (MFT records read from the chunks)
  and again (the target: well under a second after the first).
- Extracting a 1 GB folder from the store vs copying the same folder out of the partition
  on the disk (what a restore would give) through ntfs-3g with `cp -a`; the page cache is
  emptied of both the disk image and the store's chunks before each (target >= 0.8x).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.explore import open_image
from recovery.engine.extract import ExtractRequest, extract
from recovery.engine.roles import BASIC_DATA
from recovery.engine.table import write_table
from recovery.model.layout import PartitionTable, TablePartition
from recovery.sys import ntfs3g
from recovery.units import MiB


def _disk(path: Path, volume_size: int) -> TablePartition:
    size = volume_size + 4 * MiB
    with open(path, "wb") as handle:
        handle.truncate(size)
    part = TablePartition(1, MiB, volume_size, BASIC_DATA, name="Basic data partition")
    write_table(path, PartitionTable("gpt", 512, size, "", (part,)))
    ntfs3g.mkntfs(path, part.start, part.size, label="Windows")
    return part


def _uncache(*roots: Path) -> None:
    """Drop these files' pages from the page cache (only ours: other tests run here too)."""
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)  # dirty pages are not dropped
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


@pytest.mark.bench
def test_bench_list_a_folder_of_100000_files(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    part = _disk(disk, 1024 * MiB)
    started = time.perf_counter()
    with ntfs3g.mount(disk, part.start, tmp_path / "mnt", True, size=part.size) as root:
        folder = root / "Big"
        folder.mkdir()
        for number in range(100_000):
            (folder / f"photo{number:06d}.jpg").write_bytes(b"x" * (number % 50))
    print(f"\nmade 100,000 files in {time.perf_counter() - started:.0f} s")
    capture(CaptureRequest(disk, tmp_path / "store", name="big"))
    _uncache(tmp_path / "store")
    with open_image(tmp_path / "store", "big") as opened:
        started = time.perf_counter()
        first = opened.list_dir("/Big")
        cold = time.perf_counter() - started
        started = time.perf_counter()
        again = opened.list_dir("/Big")
        warm = time.perf_counter() - started
    with open_image(tmp_path / "store", "big") as opened:
        started = time.perf_counter()
        reopened = opened.list_dir("/Big")
        fresh = time.perf_counter() - started
    assert len(first) == len(again) == len(reopened) == 100_000
    print(f"list /Big (100,000 files): first {cold:.2f} s, again {warm * 1000:.1f} ms, "
          f"newly opened image (chunks in the page cache) {fresh:.2f} s")


def _fill_gigabyte(root: Path, rng: random.Random) -> int:
    total = 0
    for number in range(200):  # 200 files of 1-9 MiB, ~1 GB, half compressible
        size = rng.randrange(1 * MiB, 9 * MiB)
        data = rng.randbytes(size) if number % 2 else \
            (f"{number} some text of a document\n".encode() * (size // 30 + 1))[:size]
        path = root / "Users/Bob/Documents" / f"sub{number % 10}" / f"file{number:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return total


@pytest.mark.bench
def test_bench_extract_1gb_vs_copy_from_partition(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    part = _disk(disk, 2048 * MiB)
    with ntfs3g.mount(disk, part.start, tmp_path / "mnt", True, size=part.size) as root:
        total = _fill_gigabyte(root, random.Random(5))
    store = tmp_path / "store"
    capture(CaptureRequest(disk, store, name="gb"))
    rounds = []
    for number in range(2):
        _uncache(disk, store)
        out = tmp_path / f"extract{number}"
        out.mkdir()
        started = time.perf_counter()
        summary = extract(ExtractRequest(store, "gb", ("/Users/Bob/Documents",), out),
                          lambda e: None)
        os.sync()
        ours = time.perf_counter() - started
        assert summary.bytes == total
        _uncache(disk, store)
        copy = tmp_path / f"copy{number}"
        copy.mkdir()
        with ntfs3g.mount(disk, part.start, tmp_path / "ro", False, size=part.size) as root:
            started = time.perf_counter()
            subprocess.run(["cp", "-a", str(root / "Users/Bob/Documents"), str(copy)],
                           check=True)
            os.sync()
            theirs = time.perf_counter() - started
        rounds.append((ours, theirs))
        print(f"\n1 GB folder ({total / 1e9:.2f} GB): extract {ours:.2f} s "
              f"({total / ours / 1e6:.0f} MB/s), cp -a from the ntfs-3g partition "
              f"{theirs:.2f} s: extract runs at {theirs / ours:.2f}x the copy's speed")
