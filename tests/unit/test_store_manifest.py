"""Manifest and index damage is caught and explained; a 2 TB index loads quickly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from recovery.errors import ImageDamagedError
from recovery.store import ChunkRef, ChunkStore, ImageIndex, PartitionIndex
from recovery.store import index as index_codec
from recovery.store import manifest as manifest_codec
from tests.unit.test_store import put_data, sample_manifest, write_image


@pytest.fixture
def store(tmp_path: Path) -> ChunkStore:
    return ChunkStore.open(tmp_path / "store", create=True)


def image_file(store: ChunkStore, name: str) -> Path:
    return store.images_dir / "pc" / name


def test_edited_manifest_is_refused(store: ChunkStore) -> None:
    write_image(store, "pc")
    path = image_file(store, "manifest.yaml")
    path.write_text(path.read_text().replace("used_bytes: 3145728", "used_bytes: 3145729"))
    with pytest.raises(ImageDamagedError) as caught:
        store.load_image("pc")
    assert caught.value.title == ("The manifest of image pc was changed or damaged "
                                  "(hash mismatch).")


def test_reformatted_manifest_still_loads(store: ChunkStore) -> None:
    """The hash covers values, not layout: comments and blank lines do not matter."""
    manifest, _ = write_image(store, "pc")
    path = image_file(store, "manifest.yaml")
    path.write_text("# checked by the technician\n\n" + path.read_text())
    assert store.load_image("pc")[0] == manifest


@pytest.mark.parametrize("keep", [0.0, 0.03, 0.5, 0.97, -3])
def test_truncated_manifest_is_refused(store: ChunkStore, keep: float) -> None:
    write_image(store, "pc")
    path = image_file(store, "manifest.yaml")
    data = path.read_bytes()
    cut = int(len(data) * keep) if keep >= 0 else len(data) + int(keep)
    path.write_bytes(data[:cut])
    with pytest.raises(ImageDamagedError) as caught:
        store.load_image("pc")
    assert "manifest of image pc" in caught.value.title
    assert ("truncated" in caught.value.title or "empty" in caught.value.title
            or "hash mismatch" in caught.value.title)
    assert [info.state for info in store.list_images()] == ["damaged"]


def test_manifest_without_hash_line_is_truncated(store: ChunkStore) -> None:
    write_image(store, "pc")
    path = image_file(store, "manifest.yaml")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    with pytest.raises(ImageDamagedError, match="manifest_blake3 line is missing"):
        store.load_image("pc")


def test_missing_manifest_is_damaged(store: ChunkStore) -> None:
    write_image(store, "pc")
    image_file(store, "manifest.yaml").unlink()
    with pytest.raises(ImageDamagedError, match=r"manifest\.yaml is missing"):
        store.load_image("pc")
    assert [info.state for info in store.list_images()] == ["damaged"]


def test_truncated_index_is_refused(store: ChunkStore) -> None:
    write_image(store, "pc")
    path = image_file(store, "index.bin")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ImageDamagedError, match=r"chunk index of image pc .*truncated"):
        store.load_image("pc")
    assert store.list_images()[0].state == "damaged"


def test_flipped_index_byte_is_refused(store: ChunkStore) -> None:
    write_image(store, "pc")
    path = image_file(store, "index.bin")
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(ImageDamagedError, match="hash does not match"):
        store.load_image("pc")


def test_missing_index_is_damaged(store: ChunkStore) -> None:
    write_image(store, "pc")
    image_file(store, "index.bin").unlink()
    info = store.list_images()[0]
    assert info.state == "damaged" and "missing" in info.problem
    with pytest.raises(ImageDamagedError, match=r"index\.bin is missing"):
        store.load_image("pc")


def test_manifest_type_errors_are_caught() -> None:
    manifest = sample_manifest(b"\x00" * 32)
    document = manifest_codec.to_plain(manifest)
    document["partitions"][0]["role"] = "windows"
    document["manifest_blake3"] = manifest_codec.content_hash(document)
    import yaml

    with pytest.raises(ImageDamagedError, match="'windows' is not one of"):
        manifest_codec.load(yaml.safe_dump(document).encode(), "pc")


def test_index_rejects_garbage_and_trailing_bytes() -> None:
    with pytest.raises(index_codec.IndexFormatError):
        index_codec.decode(b"not zstd at all")
    import zstandard

    good = zstandard.ZstdDecompressor().decompress(index_codec.encode(ImageIndex()))
    with pytest.raises(index_codec.IndexFormatError, match="trailing"):
        index_codec.decode(zstandard.ZstdCompressor().compress(good + b"x"))
    with pytest.raises(index_codec.IndexFormatError, match="truncated"):
        broken = index_codec.encode(ImageIndex((PartitionIndex(1, ((0, 1),), ()),)))
        raw = zstandard.ZstdDecompressor().decompress(broken)
        index_codec.decode(zstandard.ZstdCompressor().compress(raw[:-1]))


def test_two_terabyte_index_round_trip_and_load_time(store: ChunkStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """500 k chunks with random digests and a million extents, through commit and load."""
    chunks = 500_000
    pool = os.urandom(32 * chunks)
    refs = tuple(ChunkRef(n, pool[n * 32: n * 32 + 32], n % 9 == 0) for n in range(chunks))
    extents = tuple((n * 2 * 1024 * 1024, 4096 + n % 7 * 512) for n in range(1_000_000))
    index = ImageIndex((PartitionIndex(1, extents, refs),))
    raw = put_data(store, b"boot" * 128)
    # Creating 500 k chunk files would take longer than the rest; presence is tested above.
    monkeypatch.setattr(store, "has", lambda digest: True)
    store.begin_image("big").commit(sample_manifest(raw), index)
    size = (store.images_dir / "big" / "index.bin").stat().st_size
    started = time.perf_counter()
    loaded_manifest, loaded = store.load_image("big")
    seconds = time.perf_counter() - started
    print(f"\n2 TB index: {size / 1e6:.1f} MB on disk, load_image {seconds:.2f} s")
    assert loaded == index
    assert loaded_manifest.partition(1).chunk_count == chunks
    assert loaded.partitions[0].chunks[9] == ChunkRef(9, pool[9 * 32: 10 * 32], True)
