"""A repeat capture of an unchanged NTFS volume reuses the earlier image without reading the
data; any change made through NTFS makes it read everything again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.restore import RestoreRequest, restore
from recovery.engine.unchanged import ntfs_fingerprint
from recovery.engine.verify import verify
from recovery.events import Event, Notice
from recovery.store.objects import ChunkStore
from recovery.sys import ntfs3g
from recovery.sys.blockdev import BlockDevice
from tests.engine.helpers import volume_fingerprints


def _copy(disk: DemoDisk, tmp_path: Path) -> Path:
    copy = tmp_path / "pc.img"
    subprocess.run(["cp", "--sparse=always", str(disk.path), str(copy)], check=True)
    return copy


def _capture(source: Path, store: Path, name: str, reuse: bool = True
             ) -> tuple[int, list[str]]:
    notices: list[str] = []

    def sink(event: Event) -> None:
        if isinstance(event, Notice):
            notices.append(event.message)

    summary = capture(CaptureRequest(source, store, name=name, reuse_unchanged=reuse), sink)
    return summary.stats.bytes_read, [n for n in notices if "unchanged" in n]


def _windows_index(store: Path, image: str, number: int) -> object:
    _manifest, index = ChunkStore.open(store).load_image(image)
    return next(p for p in index.partitions if p.number == number)


def test_unchanged_volume_reuses_chunks_and_restores_exactly(small_disk: DemoDisk,
                                                             tmp_path: Path) -> None:
    store, windows = tmp_path / "store", small_disk.windows
    first_read, first_notices = _capture(small_disk.path, store, "a")
    second_read, second_notices = _capture(small_disk.path, store, "b")
    assert not first_notices
    assert any(f"Partition {windows.number} is" in notice for notice in second_notices)
    assert second_read < first_read - windows.size // 20  # the volume's data was not read
    assert _windows_index(store, "b", windows.number) == \
        _windows_index(store, "a", windows.number)
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(small_disk.table.disk_size)
    assert restore(RestoreRequest(store, "b", target, confirmed=True)).verified
    assert verify(store, "b", small_disk.path).ok
    assert volume_fingerprints(target, small_disk.table) == \
        volume_fingerprints(small_disk.path, small_disk.table)


def test_a_change_through_ntfs_is_read_again(small_disk: DemoDisk, tmp_path: Path) -> None:
    source, store, windows = _copy(small_disk, tmp_path), tmp_path / "store", small_disk.windows
    _capture(source, store, "a")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with ntfs3g.mount(source, windows.start, mnt, read_write=True, size=windows.size):
        victim = max((p for p in mnt.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        times = victim.stat()
        with open(victim, "r+b") as handle:  # same size, then the old times put back
            handle.write(b"changed in place")
        os.utime(victim, ns=(times.st_atime_ns, times.st_mtime_ns))
    _read, notices = _capture(source, store, "b")
    assert not any(f"Partition {windows.number} is" in notice for notice in notices)
    assert _windows_index(store, "b", windows.number) != \
        _windows_index(store, "a", windows.number)
    assert verify(store, "b", source).ok
    assert not verify(store, "a", source).ok


def test_reuse_is_off_unless_asked_for(small_disk: DemoDisk, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first_read, _ = _capture(small_disk.path, store, "a")
    second = capture(CaptureRequest(small_disk.path, store, name="b"))  # the default
    assert second.stats.bytes_read == first_read


def test_fingerprint_is_empty_for_non_ntfs(small_disk: DemoDisk) -> None:
    esp = next(p for p in small_disk.table.partitions if p.number != small_disk.windows.number)
    with BlockDevice.open(small_disk.path) as device:
        assert ntfs_fingerprint(device, esp.start, esp.size) == ""
        windows = small_disk.windows
        assert ntfs_fingerprint(device, windows.start, windows.size).startswith("ntfs-meta")
