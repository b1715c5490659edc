"""Speed of the used-block maps on a 2 TB NTFS volume (run with `pytest -m bench -s`).

Not a pass/fail timing: it prints the numbers. The target is about one second for a
2 TB volume's 64 MB $Bitmap, read and turned into extents.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from recovery.fs.ntfs import ATTR_DATA, MFT_RECORD_BITMAP, NtfsReader, decode_runlist
from recovery.fs.probe import probe_volume
from recovery.sys import ntfs3g
from recovery.sys.blockdev import BlockDevice
from tests.fsbuild import blank_image

TWO_TB = 2 * 10**12


def _fragmented_bitmap(size: int, seed: int = 1) -> bytes:
    """About half the clusters used, in runs of 1 to 4095 clusters (~130k runs)."""
    rng = random.Random(seed)
    bitmap = bytearray(size)
    bits, position, used = size * 8, 0, True
    while position < bits:
        length = rng.randrange(1, 4096)
        if used:
            end = min(position + length, bits)
            first, last = -(-position // 8), end // 8
            bitmap[first:last] = b"\xff" * max(0, last - first)
            edges = [*range(position, min(first * 8, end)), *range(max(last * 8, position), end)]
            for bit in edges:
                bitmap[bit // 8] |= 1 << (bit % 8)
        position += length
        used = not used
    return bytes(bitmap)


def _timed_probe(image: Path) -> tuple[float, int, int]:
    with BlockDevice.open(image) as device:
        started = time.perf_counter()
        info = probe_volume(device, 0, device.size)
        return time.perf_counter() - started, info.used_bytes, len(info.used)


@pytest.mark.bench
def test_bench_ntfs_bitmap_of_a_2tb_volume(tmp_path: Path) -> None:
    image = blank_image(tmp_path / "big.img", TWO_TB)
    ntfs3g.mkntfs(image)
    seconds, used, extents = _timed_probe(image)
    print(f"\n2 TB NTFS, fresh:      {seconds:.2f} s ({used} bytes used, {extents} extents)")

    with BlockDevice.open(image, writable=True) as device:
        reader = NtfsReader(device, 0, device.size)
        data = next(a for a in reader.attributes(MFT_RECORD_BITMAP) if a.type == ATTR_DATA)
        lcn, _count = decode_runlist(data.value)[0]
        assert lcn is not None
        bitmap = _fragmented_bitmap((reader.boot.clusters + 7) // 8)
        device.write_at(lcn * reader.boot.cluster_size, bitmap)
        device.flush()
    seconds, used, extents = _timed_probe(image)
    print(f"2 TB NTFS, fragmented: {seconds:.2f} s ({used} bytes used, {extents} extents)")
    assert extents > 100_000
