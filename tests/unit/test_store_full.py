"""A store on a real, small ext4 file system that fills up: clear error, never a half image."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from recovery.errors import Hint, ImageIncompleteError, StoreFullError
from recovery.store import ChunkRef, ChunkStore, ImageIndex, PartitionIndex
from recovery.sys import ntfs3g
from tests.conftest import ext4_mounted
from tests.unit.test_store import digest_of, put_data, sample_manifest

MiB = 1024 * 1024


@pytest.fixture(params=["ext4", "ntfs"])
def small_drive(request: pytest.FixtureRequest, make_loop: Callable[..., tuple[Path, Path]],
                tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB USB drive as technicians format them (ext4, or NTFS through ntfs-3g),
    mounted; unmounted even on failure."""
    mountpoint = tmp_path / "usb"
    if request.param == "ntfs":
        image = tmp_path / "usb-ntfs.img"
        image.write_bytes(b"")
        os.truncate(image, 64 * MiB)
        ntfs3g.mkntfs(image, label="USBSTORE")
        with ntfs3g.mount(image, 0, mountpoint, read_write=True):
            yield mountpoint
        return
    _, device = make_loop(64 * MiB, name="usb.img")
    with ext4_mounted(device, mountpoint):
        yield mountpoint


def fill_with_chunks(store: ChunkStore) -> tuple[list[bytes], StoreFullError]:
    """Put incompressible 1 MiB chunks until the store refuses; returns those stored."""
    stored: list[bytes] = []
    for _ in range(200):
        data = os.urandom(MiB)
        try:
            stored.append(put_data(store, data))
        except StoreFullError as exc:
            return stored, exc
    raise AssertionError("a 64 MiB file system took 200 MiB of chunks")


def leftover_temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.root("loop devices and mounts (a full drive)")
def test_full_store_stops_with_clear_error_and_no_image(small_drive: Path) -> None:
    store = ChunkStore.open(small_drive / "images-store", create=True)
    filler = small_drive / "filler.bin"
    filler.write_bytes(os.urandom(20 * MiB))
    writer = store.begin_image("pc")
    stored, error = fill_with_chunks(store)
    assert len(stored) > 10
    assert "is full" in error.title and "free" in error.title
    assert str(small_drive / "images-store") in error.title
    assert "capture again" in error.action and error.hint is Hint.RESUME_CAPTURE
    assert leftover_temp_files(small_drive) == []
    assert all(store.has(digest) for digest in stored)

    raw = stored[0]  # the boot area shares a chunk: nothing more fits
    index = ImageIndex((PartitionIndex(1, ((0, len(stored) * MiB),), tuple(
        ChunkRef(number, digest, False) for number, digest in enumerate(stored))),))
    with pytest.raises(StoreFullError):
        writer.commit(sample_manifest(raw), index)
    assert [(i.name, i.state) for i in store.list_images()] == [("pc", "incomplete")]
    with pytest.raises(ImageIncompleteError):
        store.load_image("pc")

    # Space freed: the same capture resumes, reusing every chunk already stored.
    filler.unlink()
    resumed = store.begin_image("pc")
    assert resumed.resumed
    assert not any(store.put(digest, b"unused") for digest in stored)
    resumed.commit(sample_manifest(raw), index)
    manifest, loaded = store.load_image("pc")
    assert loaded == index and manifest.partition(1).chunk_count == len(stored)
    assert store.get(stored[-1]) is not None


@pytest.mark.root("loop devices and mounts (a full drive)")
def test_ensure_space_refuses_before_writing(small_drive: Path) -> None:
    store = ChunkStore.open(small_drive, create=True)
    free = store.free_bytes()
    assert 40 * MiB < free < 64 * MiB
    store.ensure_space(free // 2)
    with pytest.raises(StoreFullError) as caught:
        store.ensure_space(free)
    assert "more is needed" in caught.value.title
    assert store.free_bytes() == free


@pytest.mark.root("loop devices and mounts (a full drive)")
def test_commit_on_a_full_drive_leaves_no_half_image(small_drive: Path) -> None:
    """Full between chunks and manifest: the partial folder stays, nothing is published."""
    store = ChunkStore.open(small_drive, create=True)
    writer = store.begin_image("pc")
    data = os.urandom(MiB)
    raw = put_data(store, data)
    index = ImageIndex((PartitionIndex(1, ((0, MiB),), (ChunkRef(0, digest_of(data), False),)),))
    fd = os.open(small_drive / "filler.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, os.urandom(MiB)) > 0:
            pass
    except OSError:
        pass  # ENOSPC: the drive is full, as wanted
    finally:
        os.close(fd)
    with pytest.raises(StoreFullError):
        writer.commit(sample_manifest(raw), index)
    assert not (store.images_dir / "pc").exists()
    assert not (store.images_dir / "pc.partial" / "manifest.yaml").exists()
    assert leftover_temp_files(small_drive) == []
