"""Chunk reads and writes past the page cache give exactly what the plain byte-by-byte
definition gives: aligned and unaligned partitions, holes, the odd tail of a file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import blake3
import pytest

from recovery.engine.chunking import ChunkIO, ChunkSpan, chunk_spans
from recovery.errors import ImageDamagedError
from recovery.store.objects import ChunkStore
from recovery.sys.blockdev import BlockDevice
from recovery.sys.directio import read_file_direct, write_file_direct
from recovery.units import MiB

CHUNK = 1 * MiB
# (partition offset, partition size): 1 MiB aligned, MBR-style sector 63, and a partition
# that ends at an end of file that is not a multiple of 4096.
LAYOUTS = [(1 * MiB, 6 * MiB), (63 * 512, 6 * MiB), (2 * MiB, 6 * MiB + 512)]


def _used(size: int, seed: int) -> list[tuple[int, int]]:
    """Cluster runs with holes, plus one 512-byte piece (like NTFS's backup boot sector)."""
    rng = random.Random(seed)
    extents, position = [], 0
    while position < size - 8192:
        length = rng.choice([4096, 12288, 65536, 300 * 4096])
        extents.append((position, min(length, size - 512 - position)))
        position += length + rng.choice([4096, 8192, 2 * MiB])
    extents.append((size - 512, 512))
    return [(start, length) for start, length in extents if length > 0]


def _disk(tmp_path: Path, size: int, fill: bytes | None = None) -> Path:
    path = tmp_path / f"disk-{size}.img"
    path.write_bytes(fill if fill is not None else random.Random(size).randbytes(size))
    return path


def _expected(image: bytes, offset: int, span: ChunkSpan) -> bytes:
    content = bytearray(span.length)
    for start, length in span.used:
        content[start - span.start: start - span.start + length] = \
            image[offset + start: offset + start + length]
    return bytes(content)


@pytest.mark.parametrize(("offset", "size"), LAYOUTS)
@pytest.mark.parametrize("uncached", [False, True])
def test_read_masked_is_used_bytes_and_zeros(tmp_path: Path, offset: int, size: int,
                                             uncached: bool) -> None:
    path = _disk(tmp_path, offset + size)
    image = path.read_bytes()
    spans = list(chunk_spans(size, CHUNK, _used(size, offset)))
    assert len(spans) >= 4 and any(not s.fully_used for s in spans)
    with BlockDevice.open(path) as device, ChunkIO(device) as chunk_io:
        for span in spans:
            got = bytes(chunk_io.read_masked(offset, span, uncached=uncached))
            assert got == _expected(image, offset, span), f"chunk {span.number}"
        assert chunk_io.direct.active  # the fast path was taken, not only the fallback


@pytest.mark.parametrize(("offset", "size"), LAYOUTS)
def test_write_used_leaves_unused_ranges_alone(tmp_path: Path, offset: int, size: int) -> None:
    path = _disk(tmp_path, offset + size, fill=b"\xaa" * (offset + size))
    spans = list(chunk_spans(size, CHUNK, _used(size, offset + 1)))
    rng = random.Random(7)
    expected = bytearray(path.read_bytes())
    with BlockDevice.open(path, writable=True) as device, ChunkIO(device) as chunk_io:
        for span in spans:
            content = chunk_io.frame(offset, span)
            content[:] = rng.randbytes(span.length)
            for start, length in span.used:
                rel = start - span.start
                expected[offset + start: offset + start + length] = content[rel: rel + length]
            assert chunk_io.write_used(offset, span, content) == span.used_bytes
        device.flush()
    assert path.read_bytes() == bytes(expected)


def test_get_into_checks_size_and_hash(tmp_path: Path) -> None:
    store = ChunkStore.open(tmp_path / "store", create=True)
    data = os.urandom(CHUNK)
    digest = blake3.blake3(data).digest()
    store.put(digest, store.compress(data))
    out = memoryview(bytearray(CHUNK))
    store.get_into(digest, out)
    assert bytes(out) == data
    with pytest.raises(ImageDamagedError, match="should hold"):
        store.get_into(digest, memoryview(bytearray(CHUNK - 1)))
    other = os.urandom(CHUNK)
    path = store.chunk_path(digest)
    path.unlink()
    path.write_bytes(bytes(store.compress(other)))  # right size, wrong content
    with pytest.raises(ImageDamagedError, match="does not match its hash"):
        store.get_into(digest, out)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * MiB + 5])
def test_direct_files_round_trip_exact_sizes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    assert write_file_direct(path, data)
    assert path.stat().st_size == size and path.read_bytes() == data
    view = read_file_direct(path)
    assert view is not None and bytes(view) == data
    with pytest.raises(FileExistsError):
        write_file_direct(path, data)  # never replaces a file: the caller renames
