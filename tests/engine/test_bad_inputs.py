"""Every bad input a technician can hit gets its own error class, and loses nothing."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.restore import RestoreRequest, plan_restore, restore
from recovery.engine.verify import verify
from recovery.errors import (
    CancelledError,
    Hint,
    ImageDamagedError,
    ImageIncompleteError,
    ImageNotFoundError,
    NotConfirmedError,
    SectorSizeMismatchError,
    SourceError,
    StoreError,
    TargetInUseError,
    TargetReadOnlyError,
    TargetTooSmallError,
)
from recovery.events import Event, Progress
from recovery.store.objects import ChunkStore
from recovery.sys import losetup
from recovery.sys.run import run
from recovery.ui.render import cli_action
from recovery.units import MiB
from tests.conftest import ext4_mounted


def _copy_store(store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    return copy


def _target(tmp_path: Path, disk: DemoDisk, extra: int = 0) -> Path:
    path = tmp_path / "target.img"
    with open(path, "wb") as handle:
        handle.truncate(disk.table.disk_size + extra)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recovery", *argv], capture_output=True,
                          text=True, timeout=600)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        capture(CaptureRequest(tmp_path / "nope.img", tmp_path / "store"))


def test_partition_instead_of_disk(small_disk: DemoDisk, tmp_path: Path) -> None:
    with losetup.loop_device(small_disk.path, read_only=True) as disk:
        run(["partx", "-a", str(disk)])
        partition = Path(f"{disk}p3")
        assert partition.exists()
        with pytest.raises(SourceError, match="is a partition, not a whole disk"):
            capture(CaptureRequest(partition, tmp_path / "store"))


def test_unknown_image_names_the_ones_there(small_store: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="base"):
        verify(small_store, "no-such-image")


def test_wrong_store_path(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(StoreError):
        verify(tmp_path / "photos", "base")


def test_damaged_chunk_is_reported_and_restore_refuses(small_store: Path, small_disk: DemoDisk,
                                                       tmp_path: Path) -> None:
    store = _copy_store(small_store, tmp_path)
    chunk_files = sorted((store / "chunks").rglob("*"), key=lambda p: p.stat().st_size)
    victims = [p for p in chunk_files if p.is_file()][-2:]
    for victim in victims:
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    summary = verify(store, "base")
    assert len(summary.problems) == 2  # every damaged chunk, not just the first
    target = _target(tmp_path, small_disk)
    with pytest.raises(ImageDamagedError, match=r"Chunk [0-9a-f]{64}"):
        restore(RestoreRequest(store, "base", target, confirmed=True))
    result = _cli("verify", "--store", str(store), "base")
    assert result.returncode == 40 and "2 problem(s)" in result.stdout


def test_missing_chunk_refused_before_touching_target(small_store: Path, small_disk: DemoDisk,
                                                      tmp_path: Path) -> None:
    store = _copy_store(small_store, tmp_path)
    next(p for p in (store / "chunks").rglob("*") if p.is_file()).unlink()
    target = _target(tmp_path, small_disk)
    target.write_bytes(b"old data" * 1000 + bytes(small_disk.table.disk_size - 8000))
    before = _digest(target)
    with pytest.raises(ImageDamagedError, match="nothing was written"):
        restore(RestoreRequest(store, "base", target, confirmed=True))
    assert _digest(target) == before


@pytest.mark.parametrize("edit", ["truncate", "edit"])
def test_broken_manifest(small_store: Path, tmp_path: Path, edit: str) -> None:
    store = _copy_store(small_store, tmp_path)
    manifest = store / "images" / "base" / "manifest.yaml"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2] if edit == "truncate"
                        else text.replace("role: system", "role: data"))
    with pytest.raises(ImageDamagedError):
        verify(store, "base")


def test_restore_needs_confirmation(small_store: Path, small_disk: DemoDisk,
                                    tmp_path: Path) -> None:
    target = _target(tmp_path, small_disk)
    with pytest.raises(NotConfirmedError):
        restore(RestoreRequest(small_store, "base", target))
    result = _cli("restore", "--store", str(small_store), "base", str(target))
    assert result.returncode == NotConfirmedError.code
    assert "This will overwrite" in result.stdout
    assert target.stat().st_blocks == 0  # untouched sparse file


def test_target_too_small(small_store: Path, small_disk: DemoDisk, tmp_path: Path) -> None:
    target = _target(tmp_path, small_disk, extra=-64 * MiB)
    with pytest.raises(TargetTooSmallError, match="too small"):
        restore(RestoreRequest(small_store, "base", target, confirmed=True))


def test_target_read_only(small_store: Path, small_disk: DemoDisk, tmp_path: Path) -> None:
    target = _target(tmp_path, small_disk)
    with losetup.loop_device(target, read_only=True) as device, \
            pytest.raises(TargetReadOnlyError):
        restore(RestoreRequest(small_store, "base", device, confirmed=True))


def test_sector_size_mismatch(small_store: Path, small_disk: DemoDisk, tmp_path: Path) -> None:
    target = _target(tmp_path, small_disk)
    with losetup.loop_device(target, sector_size=4096) as device, \
            pytest.raises(SectorSizeMismatchError):
        restore(RestoreRequest(small_store, "base", device, confirmed=True))


@contextmanager
def _mounted_ext4(image: Path, mountpoint: Path) -> Iterator[Path]:
    """The whole target disk formatted ext4 and mounted, as a USB drive holding a store."""
    with losetup.loop_device(image) as device, ext4_mounted(device, mountpoint):
        yield device


def test_target_mounted(small_store: Path, small_disk: DemoDisk, tmp_path: Path) -> None:
    target = _target(tmp_path, small_disk, extra=64 * MiB)
    with _mounted_ext4(target, tmp_path / "mnt") as device, \
            pytest.raises(TargetInUseError, match="mounted"):
        restore(RestoreRequest(small_store, "base", device, confirmed=True))


def test_store_on_the_target_disk(small_store: Path, small_disk: DemoDisk,
                                  tmp_path: Path) -> None:
    target = _target(tmp_path, small_disk, extra=512 * MiB)
    with _mounted_ext4(target, tmp_path / "usb") as device:
        shutil.copytree(small_store, tmp_path / "usb" / "store")
        request = RestoreRequest(tmp_path / "usb" / "store", "base", device, confirmed=True)
        titles = [refusal.title for refusal in plan_restore(request).refusals]
        assert any("holds the image store" in title for title in titles), titles
        with pytest.raises(TargetInUseError):
            restore(request)


def test_interrupted_capture_is_incomplete_then_resumes(small_disk: DemoDisk,
                                                         tmp_path: Path) -> None:
    store = tmp_path / "store"
    cancel = threading.Event()

    def stop_midway(event: Event) -> None:
        if isinstance(event, Progress):  # the first progress report: still in partition 1
            cancel.set()

    with pytest.raises(CancelledError):
        capture(CaptureRequest(small_disk.path, store, name="pc"), stop_midway, cancel)
    states = {i.name: i.state for i in ChunkStore.open(store).list_images()}
    assert states == {"pc": "incomplete"}
    with pytest.raises(ImageIncompleteError):
        verify(store, "pc")
    again = capture(CaptureRequest(small_disk.path, store, name="pc"))
    assert again.stats.chunks_reused > 0
    assert verify(store, "pc").ok


def test_interrupted_restore_resumes_with_delta(small_store: Path, small_disk: DemoDisk,
                                                tmp_path: Path) -> None:
    target = _target(tmp_path, small_disk)
    cancel = threading.Event()

    def stop_midway(event: Event) -> None:
        if isinstance(event, Progress) and event.phase == "restore" and event.done_bytes:
            cancel.set()

    with pytest.raises(CancelledError) as stopped:
        restore(RestoreRequest(small_store, "base", target, confirmed=True), stop_midway,
                cancel)
    # The engine states the fact; the CLI names the flag (recovery.errors.Hint).
    assert stopped.value.hint is Hint.RESUME_DELTA and "--" not in stopped.value.action
    assert "--delta" in cli_action(stopped.value)
    resumed = restore(RestoreRequest(small_store, "base", target, delta=True, confirmed=True))
    assert resumed.chunks_skipped > 0 and resumed.chunks_written > 0 and resumed.verified
    assert verify(small_store, "base", target).ok
