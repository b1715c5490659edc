"""The chunk store and the image lifecycle, on a real directory with real files."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import blake3
import pytest

from recovery.errors import (
    Hint,
    ImageDamagedError,
    ImageIncompleteError,
    ImageNotFoundError,
    StoreError,
    UsageError,
)
from recovery.model.layout import PartitionTable, TablePartition
from recovery.model.manifest import (
    CaptureStats,
    ImageManifest,
    PartitionImage,
    RawArea,
    SourceIdentity,
)
from recovery.store import (
    ChunkRef,
    ChunkStore,
    ImageIndex,
    PartitionIndex,
    default_image_name,
    objects,
)
from recovery.store import files as store_files

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 1024 * 1024


def digest_of(data: bytes) -> bytes:
    result: bytes = blake3.blake3(data).digest()
    return result


def put_data(store: ChunkStore, data: bytes) -> bytes:
    digest = digest_of(data)
    store.put(digest, store.compress(data))
    return digest


def sample_source() -> SourceIdentity:
    return SourceIdentity(stable_id="WDC_WD2500AAKS-00V1A0_WD-WCAWF1234567",
                          model="WDC WD2500AAKS-00V1A0", serial="WD-WCAWF1234567", bus="ata",
                          size=250_059_350_016, logical_sector_size=512, node="/dev/sda")


def sample_manifest(raw_digest: bytes, chunk_size: int = CHUNK) -> ImageManifest:
    table = PartitionTable(
        scheme="gpt", sector_size=512, disk_size=250_059_350_016,
        disk_id="0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9",
        partitions=(
            TablePartition(1, 1_048_576, 104_857_600, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                           "11111111-2222-4333-8444-555555555555", "EFI system partition",
                           0x8000000000000001),
            TablePartition(2, 105_906_176, 16_777_216, "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
                           "66666666-7777-4888-9999-AAAAAAAAAAAA", "Microsoft reserved")),
        first_usable_lba=34, last_usable_lba=488_397_134)
    parts = (
        PartitionImage(number=1, role="boot", fs_type="vfat", label="SYSTEM", start=1_048_576,
                       size=104_857_600, used_bytes=3 * chunk_size, captured=True,
                       warnings=("file system marked dirty",)),
        PartitionImage(number=2, role="reserved", fs_type="", label="", start=105_906_176,
                       size=16_777_216, used_bytes=16_777_216, captured=False))
    return ImageManifest.build(
        name="ignored", created=datetime(2026, 11, 25, 15, 30), tool_version="0.1.0",
        host="recovery-live", chunk_size=chunk_size, source=sample_source(), table=table,
        raw_areas=(RawArea("lba0", 0, 512, raw_digest.hex()),), partitions=parts,
        stats=CaptureStats(bytes_read=3 * chunk_size, bytes_stored=1000, chunks_new=2,
                           chunks_zero=1, seconds=1.23456))


def write_image(store: ChunkStore, name: str) -> tuple[ImageManifest, ImageIndex]:
    """A small complete image: two data chunks, one zero chunk, one boot area."""
    chunks = [os.urandom(CHUNK), b"windows" * (CHUNK // 7) + bytes(CHUNK % 7)]
    digests = [put_data(store, data) for data in chunks]
    raw = put_data(store, b"\x33\xc0" + bytes(510))
    index = ImageIndex((PartitionIndex(1, ((0, 3 * CHUNK),), (
        ChunkRef(0, digests[0], False), ChunkRef(1, digests[1], False),
        ChunkRef(2, digest_of(bytes(CHUNK)), True))),))
    manifest = store.begin_image(name).commit(sample_manifest(raw), index)
    return manifest, index


@pytest.fixture
def store(tmp_path: Path) -> ChunkStore:
    return ChunkStore.open(tmp_path / "store", create=True)


# --- chunks --------------------------------------------------------------------------------
def test_put_get_round_trip_and_dedupe(store: ChunkStore) -> None:
    data = os.urandom(CHUNK // 2) + bytes(CHUNK // 2)
    digest = digest_of(data)
    assert not store.has(digest)
    assert store.put(digest, store.compress(data)) is True
    assert store.put(digest, store.compress(data)) is False
    assert store.has(digest)
    assert store.get(digest) == data
    files = [p for p in (store.root / "chunks").rglob("*") if p.is_file()]
    assert files == [store.root / "chunks" / digest.hex()[:2] / digest.hex()]
    assert len(store.read_compressed(digest)) < len(data)


def test_a_batched_chunk_file_is_named_only_when_durable_and_read_before(
        store: ChunkStore) -> None:
    """Capture's put(batched=True) writes the file under a temp name; it gets its name with
    its batch's fsync (or at sync()): a crash never leaves a named chunk that is
    incomplete."""
    data = os.urandom(CHUNK)
    digest = digest_of(data)
    assert store.put(digest, store.compress(data), batched=True) is True
    final = store.chunk_path(digest)
    assert not final.exists()
    assert store.has(digest) and store.get(digest) == data
    assert store.put(digest, store.compress(data), batched=True) is False
    store.sync()
    assert final.is_file() and not list(final.parent.glob(".*.tmp"))
    assert store.get(digest) == data


def test_batches_are_named_in_the_background_with_a_bounded_backlog(store: ChunkStore) -> None:
    """Full batches are fsynced and named by a thread of their own while puts go on; at no
    moment are more than two backlogs unnamed, and sync() names the rest."""
    backlog = objects._PUBLISH_BACKLOG
    blobs = [os.urandom(4096) for _ in range(3 * backlog + 5)]
    most_unnamed = 0
    for data in blobs:
        assert store.put(digest_of(data), store.compress(data), batched=True) is True
        unnamed = len(list((store.root / "chunks").rglob(".*.tmp")))
        most_unnamed = max(most_unnamed, unnamed)
        assert store.has(digest_of(data))
    assert most_unnamed <= 2 * backlog
    store.sync()
    assert not list((store.root / "chunks").rglob(".*.tmp"))
    assert all(store.chunk_path(digest_of(data)).is_file() for data in blobs)
    assert all(store.get(digest_of(data)) == data for data in blobs)


def test_puts_wait_for_a_slow_batch_only_when_the_backlog_is_full(
        store: ChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a batch's fsync is slow (a store drive busy writing back; held here on an
    event), the workers go on writing chunk files until _PUBLISH_BACKLOG wait to be named;
    the put that fills the backlog waits for that batch, and nothing is lost."""
    release = threading.Event()
    fsync = store_files.fsync_file

    def slow_fsync(path: Path) -> None:
        release.wait(30)
        fsync(path)

    monkeypatch.setattr(store_files, "fsync_file", slow_fsync)
    batch, backlog = objects._PUBLISH_BATCH, objects._PUBLISH_BACKLOG
    blobs = [os.urandom(4096) for _ in range(batch + backlog)]

    def put_all(which: list[bytes]) -> None:
        for data in which:
            store.put(digest_of(data), store.compress(data), batched=True)

    free = threading.Thread(target=put_all, args=(blobs[:batch + backlog - 1],))
    free.start()
    free.join(10)  # the first batch's fsync is held: these puts must not wait for it
    assert not free.is_alive()
    full = threading.Thread(target=put_all, args=(blobs[-1:],))
    full.start()
    full.join(0.3)
    assert full.is_alive()  # the backlog is full: this put waits for the held batch
    release.set()
    full.join(10)
    assert not full.is_alive()
    store.sync()
    assert not list((store.root / "chunks").rglob(".*.tmp"))
    assert all(store.get(digest_of(data)) == data for data in blobs)


def test_a_batch_that_cannot_be_made_durable_fails_the_writer_and_names_nothing(
        store: ChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync failing (a store drive going bad; mocked: a real one cannot fail on cue) in
    the background: sync() raises it, the batch's files are not named and are removed."""
    def failing_fsync(path: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_files, "fsync_file", failing_fsync)
    blobs = [os.urandom(4096) for _ in range(objects._PUBLISH_BATCH)]
    for data in blobs:
        store.put(digest_of(data), store.compress(data), batched=True)
    with pytest.raises(StoreError, match="Input/output error"):
        store.sync()
    assert not [p for p in (store.root / "chunks").rglob("*") if p.is_file()]
    assert not any(store.has(digest_of(data)) for data in blobs)


def test_incompressible_chunk_is_a_raw_zstd_frame_padded_to_whole_blocks(
        store: ChunkStore) -> None:
    """Random data is stored in raw blocks (no zstd match search), text is compressed, and
    every chunk file is whole 4 KiB blocks; the standard zstd tool reads both."""
    random_data, text = os.urandom(CHUNK), b"service started OK\n" * (CHUNK // 19)
    for data, compressed in ((random_data, False), (text, True)):
        digest = digest_of(data)
        store.put(digest, store.compress(data))
        blob = store.chunk_path(digest).read_bytes()
        assert len(blob) % 4096 == 0
        assert (len(blob) < len(data) // 10) is compressed
        assert store.get(digest) == data
        out = bytearray(len(data))
        store.get_into(digest, memoryview(out))
        assert out == data
        unpacked = subprocess.run(["zstd", "-d", "-c", str(store.chunk_path(digest))],
                                  capture_output=True, check=True).stdout
        assert unpacked == data
    mixed = random_data[:CHUNK // 2] + text[:CHUNK // 2]
    assert len(store.compress(mixed)) < len(mixed) * 0.6


def test_concurrent_puts_of_one_digest_store_it_once(store: ChunkStore) -> None:
    data = os.urandom(CHUNK)
    digest = digest_of(data)
    barrier = threading.Barrier(12)
    results: list[bool] = []

    def worker() -> None:
        blob = store.compress(data)
        barrier.wait()
        results.append(store.put(digest, blob))

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 11 + [True]
    assert store.get(digest) == data
    assert list(store.chunk_path(digest).parent.iterdir()) == [store.chunk_path(digest)]


def test_concurrent_puts_of_many_chunks(store: ChunkStore) -> None:
    blobs = [os.urandom(64 * 1024) for _ in range(64)]

    def worker(part: list[bytes]) -> None:
        for data in part:
            put_data(store, data)

    threads = [threading.Thread(target=worker, args=(blobs[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.sync()
    assert all(store.get(digest_of(data)) == data for data in blobs)


def test_damaged_chunk_is_named(store: ChunkStore) -> None:
    data = b"registry hive " * 50_000
    digest = put_data(store, data)
    path = store.chunk_path(digest)
    blob = bytearray(path.read_bytes())
    # In the zstd frame: the file's tail is padding that every decoder skips.
    blob[len(store.compress(data)) // 2] ^= 0x40
    path.write_bytes(bytes(blob))
    with pytest.raises(ImageDamagedError) as caught:
        store.get(digest)
    assert digest.hex() in caught.value.title
    assert "corrupt" in caught.value.title


def test_chunk_with_other_content_fails_its_hash(store: ChunkStore) -> None:
    digest = put_data(store, b"A" * 4096)
    store.chunk_path(digest).write_bytes(bytes(store.compress(b"B" * 4096)))
    with pytest.raises(ImageDamagedError, match="does not match its hash"):
        store.get(digest)


def test_missing_chunk_is_named(store: ChunkStore) -> None:
    digest = digest_of(b"never stored")
    with pytest.raises(ImageDamagedError) as caught:
        store.get(digest)
    assert digest.hex() in caught.value.title and "missing" in caught.value.title


# --- opening -------------------------------------------------------------------------------
def test_wrong_store_paths(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        ChunkStore.open(tmp_path / "nowhere")
    (tmp_path / "usb").mkdir()
    with pytest.raises(StoreError) as caught:
        ChunkStore.open(tmp_path / "usb")
    assert "recovery-store.yaml" in caught.value.title and str(tmp_path / "usb") in str(
        caught.value)
    assert caught.value.hint is Hint.NEW_STORE
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        ChunkStore.open(tmp_path / "file")


def test_create_in_existing_directory_and_reopen(tmp_path: Path) -> None:
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "holiday.jpg").write_bytes(b"jpeg")
    created = ChunkStore.open(tmp_path / "usb", create=True)
    digest = put_data(created, b"x" * 1000)
    again = ChunkStore.open(tmp_path / "usb")
    assert again.get(digest) == b"x" * 1000
    assert ChunkStore.open(tmp_path / "usb", create=True).has(digest)
    assert (tmp_path / "usb" / "holiday.jpg").read_bytes() == b"jpeg"


def test_store_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    ChunkStore.open(tmp_path, create=True)
    (tmp_path / "recovery-store.yaml").write_text("format: 2\n")
    with pytest.raises(StoreError, match="format 2"):
        ChunkStore.open(tmp_path)


# --- image lifecycle -----------------------------------------------------------------------
def test_commit_then_load_round_trip(store: ChunkStore) -> None:
    manifest, index = write_image(store, "office-pc")
    loaded, loaded_index = store.load_image("office-pc")
    assert loaded == manifest
    assert loaded_index == index
    assert loaded.name == "office-pc"
    assert loaded.partition(1).chunk_count == 3
    assert loaded.stats.seconds == 1.235
    assert not (store.images_dir / "office-pc.partial").exists()
    text = (store.images_dir / "office-pc" / "manifest.yaml").read_text()
    assert "disk_id: 0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9" in text
    assert "size_human: 250.1 GB" in text
    assert text.rstrip().splitlines()[-1].startswith("manifest_blake3: ")


def test_list_images_complete_incomplete_damaged(store: ChunkStore) -> None:
    write_image(store, "good")
    write_image(store, "edited")
    path = store.images_dir / "edited" / "manifest.yaml"
    path.write_text(path.read_text().replace("label: SYSTEM", "label: SYSTEN"))
    store.begin_image("running").abort()
    infos = {info.name: info for info in store.list_images()}
    assert infos["good"].complete and infos["good"].manifest is not None
    assert infos["good"].source_id == sample_source().stable_id
    assert infos["running"].state == "incomplete" and not infos["running"].complete
    assert infos["running"].created.endswith("Z")
    assert infos["edited"].state == "damaged"
    assert "hash mismatch" in infos["edited"].problem
    json.dumps([info.to_dict() for info in infos.values()])


def test_existing_name_is_refused(store: ChunkStore) -> None:
    write_image(store, "pc")
    with pytest.raises(StoreError, match="An image named pc already exists"):
        store.begin_image("pc")


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x.partial", "a b"])
def test_bad_names_are_refused(store: ChunkStore, name: str) -> None:
    with pytest.raises(UsageError):
        store.begin_image(name)


def test_unknown_image_lists_available(store: ChunkStore) -> None:
    write_image(store, "first")
    write_image(store, "second")
    with pytest.raises(ImageNotFoundError) as caught:
        store.load_image("third")
    assert "third" in caught.value.title
    assert "first, second" in caught.value.action


def test_incomplete_image_cannot_be_loaded_and_resumes(store: ChunkStore) -> None:
    writer = store.begin_image("pc")
    writer.abort()
    with pytest.raises(ImageIncompleteError, match="interrupted"):
        store.load_image("pc")
    resumed = store.begin_image("pc")
    assert resumed.resumed and resumed.started == writer.started
    raw = put_data(store, bytes(511) + b"\x01")
    data = os.urandom(1000)
    index = ImageIndex((PartitionIndex(1, ((0, 1000),), (ChunkRef(0, put_data(store, data),
                                                                    False),)),))
    resumed.commit(sample_manifest(raw), index)
    assert [info.state for info in store.list_images()] == ["complete"]


def test_commit_refuses_an_index_pointing_to_missing_chunks(store: ChunkStore) -> None:
    raw = put_data(store, b"boot" * 128)
    index = ImageIndex((PartitionIndex(1, ((0, 10),), (ChunkRef(0, digest_of(b"lost"),
                                                                False),)),))
    with pytest.raises(ImageDamagedError, match="not in the store"):
        store.begin_image("pc").commit(sample_manifest(raw), index)
    assert [info.state for info in store.list_images()] == ["incomplete"]


def _run_killed_capture(store: Path, stage: str) -> None:
    """A real process that writes an image and is SIGKILLed at `stage`."""
    script = f"""
import os, signal, blake3
from pathlib import Path
from recovery.store import ChunkStore, ChunkRef, ImageIndex, PartitionIndex
from recovery.store import manifest as codec
from tests.unit.test_store import sample_manifest, put_data
store = ChunkStore.open(Path({str(store)!r}), create=True)
writer = store.begin_image("pc")
digest = put_data(store, os.urandom(4096))
raw = put_data(store, b"boot" * 128)
if {stage!r} == "chunks":
    os.kill(os.getpid(), signal.SIGKILL)
codec.dump = lambda manifest: os.kill(os.getpid(), signal.SIGKILL)
index = ImageIndex((PartitionIndex(1, ((0, 4096),), (ChunkRef(0, digest, False),)),))
writer.commit(sample_manifest(raw), index)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == -9, result.stderr


@pytest.mark.parametrize("stage", ["chunks", "index"])
def test_killed_capture_is_listed_as_incomplete(tmp_path: Path, stage: str) -> None:
    _run_killed_capture(tmp_path, stage)
    store = ChunkStore.open(tmp_path)
    infos = store.list_images()
    assert [(info.name, info.state) for info in infos] == [("pc", "incomplete")]
    assert (tmp_path / "images" / "pc.partial" / "index.bin").exists() == (stage == "index")
    with pytest.raises(ImageIncompleteError):
        store.load_image("pc")


def test_default_image_name() -> None:
    when = datetime(2026, 11, 25, 15, 30)
    assert default_image_name(sample_source(), when) == "WDC-WD2500AAKS-00V1A0-20261125-1530"
    nvme = SourceIdentity("x", "Samsung SSD 970 EVO Plus 1TB (NVMe) / extra words", "s",
                          "nvme", 1, 512, "/dev/nvme0n1")
    name = default_image_name(nvme, when)
    assert name == "Samsung-SSD-970-EVO-Plus-1TB-20261125-1530"
    blank = SourceIdentity("x", "", "", "", 1, 512, "/tmp/disk.img")
    assert default_image_name(blank, when) == "disk-20261125-1530"


# --- deleting images and reclaiming chunks -------------------------------------------------
def test_remove_image_then_collect_keeps_shared_chunks(store: ChunkStore) -> None:
    _, first_index = write_image(store, "monday")
    _, second_index = write_image(store, "tuesday")
    shared = put_data(store, b"shared")
    assert store.collect_garbage().chunks_removed == 1  # `shared` belongs to no image
    assert not store.has(shared)
    store.remove_image("monday")
    assert [info.name for info in store.list_images()] == ["tuesday"]
    report = store.collect_garbage()
    only_monday = first_index.stored_digests() - second_index.stored_digests()
    assert len(only_monday) == 1  # the random chunk; the other one both images share
    assert report.chunks_removed == 1 and report.bytes_freed > 1_000_000
    assert all(store.has(digest) for digest in second_index.stored_digests())
    assert not any(store.has(digest) for digest in only_monday)
    store.load_image("tuesday")
    with pytest.raises(ImageNotFoundError, match="monday"):
        store.remove_image("monday")


def test_collect_refuses_while_a_capture_is_incomplete(store: ChunkStore) -> None:
    store.begin_image("pc")
    needed_by_resume = put_data(store, b"captured before the interruption")
    with pytest.raises(StoreError, match=r"pc .* is incomplete"):
        store.collect_garbage()
    assert store.has(needed_by_resume)
    store.remove_image("pc")
    assert store.collect_garbage().chunks_removed == 1


def test_collect_removes_temp_files_of_dead_writers(store: ChunkStore) -> None:
    digest = put_data(store, b"x" * 100)
    folder = store.chunk_path(digest).parent
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = folder / f".{digest.hex()}.{dead}-1.tmp"
    stale.write_bytes(b"half a chunk")
    report = store.collect_garbage()
    assert report.temp_files_removed == 1 and not stale.exists()
    assert report.chunks_kept == 0 and report.chunks_removed == 1


def test_all_zero_boot_area_is_stored_by_commit(store: ChunkStore) -> None:
    """GPT disks made by Linux tools have no boot code: LBA 0's first 440 bytes are zero,
    and the engine does not store zero chunks; the image must still be complete."""
    zero_area = RawArea("mbr-boot-code", 0, 440, digest_of(bytes(440)).hex())
    data = os.urandom(4096)
    index = ImageIndex((PartitionIndex(1, ((0, 4096),), (ChunkRef(0, put_data(store, data),
                                                                    False),)),))
    manifest = dataclasses.replace(sample_manifest(digest_of(b"unused")),
                                   raw_areas=(zero_area,))
    store.begin_image("pc").commit(manifest, index)
    loaded, _ = store.load_image("pc")
    assert store.read_area(loaded.raw_areas[0]) == bytes(440)
    assert store.get(bytes.fromhex(zero_area.digest)) == bytes(440)
    boot = RawArea("mbr-boot-code", 0, 440, put_data(store, b"\xeb" * 440).hex())
    assert store.read_area(boot) == b"\xeb" * 440
    with pytest.raises(ImageDamagedError, match="should be 512 bytes"):
        store.read_area(dataclasses.replace(boot, size=512))


def test_interrupted_capture_of_the_same_disk_is_found_to_resume(store: ChunkStore) -> None:
    other = dataclasses.replace(sample_source(), stable_id="Samsung_SSD_970_S4EWNX0M123456")
    store.begin_image("laptop", source=other).abort()
    assert store.resumable_image(sample_source()) is None
    store.begin_image("office-pc", source=sample_source()).abort()
    assert store.resumable_image(sample_source()) == "office-pc"
    info = {i.name: i for i in store.list_images()}["office-pc"]
    assert info.source_id == sample_source().stable_id and not info.complete
    assert store.begin_image("office-pc").resumed


def test_default_name_avoids_names_in_use() -> None:
    when = datetime(2026, 11, 25, 15, 30)
    base = "WDC-WD2500AAKS-00V1A0-20261125-1530"
    assert default_image_name(sample_source(), when, {"other"}) == base
    assert default_image_name(sample_source(), when, {base, f"{base}-2"}) == f"{base}-3"


def test_a_raw_frame_written_through_the_page_cache_is_one_zstd_frame(tmp_path: Path) -> None:
    """The network path (no O_DIRECT): the frame's pieces go out in one writev, not joined
    first; the file is what zstd -d reads, padding included."""
    from recovery.store import files, frames
    data = os.urandom(CHUNK)
    frame = frames.raw_frame(data)
    assert isinstance(frame, frames.Frame) and len(frame) == len(bytes(frame))
    pad = frames.padding(len(frame), 4096)
    temp = files.write_temp(tmp_path / "chunk", tmp_path, *frame.pieces, pad, direct=False)
    assert temp.read_bytes() == bytes(frame) + pad
    unpacked = subprocess.run(["zstd", "-d", "-c", str(temp)], capture_output=True,
                              check=True).stdout
    assert unpacked == data

