"""Rescue capture of a failing disk through real kernel I/O errors (faultyfs + loop).

Read errors inside a file's data, inside the $MFT record of a known file, inside the
SYSTEM hive and in free space, plus one slow area: the capture completes (exit 14), the
manifest lists exactly the failing used ranges, the damaged files are named as ntfscluster
names them, a restore equals the source outside the listed ranges, the source is never
written, and a second rescue run retries only the unread ranges.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyfsntfs
import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.rescue import RescueOptions
from recovery.fs.probe import probe_volume
from recovery.model.extents import Extent, clip
from recovery.registry.identity import UNREADABLE_NAME
from recovery.store.objects import ChunkStore
from recovery.sys import losetup, ntfs3g
from recovery.sys.blockdev import BlockDevice
from recovery.sys.run import run_text
from recovery.sys.slice import DeviceSlice
from recovery.units import KiB, MiB
from tests.faults.conftest import LoopFactory, MountFactory, blank_disk, copy_disk
from tests.faults.faultyfs import Fault

DATA_FILE = "\\Windows\\System32\\drivers\\drv0000.sys"
RECORD_FILE = "\\Windows\\System32\\drivers\\drv0001.sys"
HIVE = "\\Windows\\System32\\config\\SYSTEM"
SLOW_FILE = "\\Windows\\System32\\drivers\\drv0003.sys"


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recovery", *argv], capture_output=True,
                          text=True, timeout=900)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Layout:
    """Where the chosen faults go, relative to the Windows volume."""

    data: Extent  # 8 KiB inside DATA_FILE
    record: Extent  # RECORD_FILE's MFT record
    hive: Extent  # 4 KiB inside SYSTEM
    free: Extent  # 64 KiB of free space
    slow: Extent  # 64 KiB inside SLOW_FILE
    record_number: int


def _layout(disk: DemoDisk) -> Layout:
    windows = disk.windows
    with BlockDevice.open(disk.path) as device:
        used = probe_volume(device, windows.start, windows.size).used
        volume = pyfsntfs.volume()
        volume.open_file_object(DeviceSlice(device, windows.start, windows.size))
        try:
            def middle(path: str, length: int) -> Extent:
                offset, size, _ = volume.get_file_entry_by_path(path).get_extent(0)
                return (offset + (size // 2) // (4 * KiB) * (4 * KiB), length)

            entry = volume.get_file_entry_by_path(RECORD_FILE)
            number = entry.get_file_reference() & ((1 << 48) - 1)
            mft = volume.get_file_entry(0)
            mft_offset = mft.get_extent(0)[0]
            layout = Layout(middle(DATA_FILE, 8 * KiB), (mft_offset + number * 1024, 1024),
                            middle(HIVE, 4 * KiB), _free(used, windows.size),
                            middle(SLOW_FILE, 64 * KiB), number)
        finally:
            volume.close()
    return layout


def _add_regback_copy(image: Path, disk: DemoDisk) -> None:
    """Windows 7-10 (before 1803) kept copies of the hives in config\\RegBack."""
    windows = disk.windows
    with tempfile.TemporaryDirectory() as mnt, \
            ntfs3g.mount(image, windows.start, Path(mnt), read_write=True, size=windows.size):
        config = Path(mnt) / "Windows" / "System32" / "config"
        (config / "RegBack").mkdir()
        (config / "RegBack" / "SYSTEM").write_bytes((config / "SYSTEM").read_bytes())


def _free(used: list[Extent], size: int) -> Extent:
    """64 KiB of unused space in the middle of the volume."""
    candidate = size // 2 // MiB * MiB
    while clip(used, candidate, candidate + 64 * KiB):
        candidate += MiB
    return (candidate, 64 * KiB)


def _ntfscluster(volume: Path, start: int, length: int) -> str:
    first, last = start // 4096, (start + length - 1) // 4096
    return run_text(["ntfscluster", "-f", "-c", f"{first}-{last}", str(volume)], check=False)


def test_rescue_capture_of_a_failing_disk(small_disk: DemoDisk, mount_faulty: MountFactory,
                                          loop_over: LoopFactory, tmp_path: Path) -> None:
    backing = copy_disk(small_disk.path, tmp_path / "source.img")
    _add_regback_copy(backing, small_disk)
    layout = _layout(replace(small_disk, path=backing))
    before = _sha256(backing)
    faulty = mount_faulty(backing)
    source = loop_over(faulty.disk)
    base = small_disk.windows.start
    bad = [layout.data, layout.record, layout.hive]
    faulty.arm(*(Fault("read", base + s, base + s + n) for s, n in [*bad, layout.free]),
               Fault("read", base + layout.slow[0], base + sum(layout.slow), delay=0.6))
    store = tmp_path / "store"

    done = _cli("capture", str(source), "--store", str(store), "--rescue", "--slow-read",
                "0.5", "--json")
    assert done.returncode == 14, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    windows = next(p for p in summary["partitions"] if p["number"] == small_disk.windows.number)
    assert [(r["offset"], r["length"]) for r in windows["unreadable"]] == sorted(bad)
    assert summary["unreadable_bytes"] == sum(n for _, n in bad)
    assert summary["reads_failed"] > 0 and summary["reads_retried"] > 0
    state = faulty.state()
    assert state.faults[-1].hits > 0  # the slow area was read (slowly), not lost

    damaged = {(d["kind"], d["path"]): d for d in windows["damaged"]}
    assert damaged[("file-data", DATA_FILE)]["bytes_lost"] == 8 * KiB
    assert damaged[("file-data", HIVE)]["bytes_lost"] == 4 * KiB
    assert "RegBack holds a good copy" in damaged[("file-data", HIVE)]["note"]
    assert "RegBack" not in damaged[("file-data", DATA_FILE)]["note"]
    assert ("mft-record", RECORD_FILE) in damaged
    assert len(damaged) == 3, damaged

    # ntfscluster (ntfs-3g) names the same files for the same clusters, on the clean copy.
    with losetup.loop_device(backing, read_only=True, offset=base,
                             size=small_disk.windows.size) as volume_device:
        for (start, length), path in ((layout.data, DATA_FILE), (layout.hive, HIVE)):
            named = _ntfscluster(volume_device, start, length)
            assert path.replace("\\", "/") in named, named
        inode = run_text(["ntfscluster", "-f", "-I", str(layout.record_number),
                          str(volume_device)], check=False)
        assert RECORD_FILE.rsplit("\\", 1)[1] in inode, inode
        assert "/" not in re.sub(r".*?Inode", "", _ntfscluster(volume_device, *layout.free))

    # The image restores onto a clean disk equal to the source outside the listed ranges.
    faulty.clear()
    image = summary["image"]
    listed = _cli("images", "--store", str(store))
    assert f"complete, {summary['unreadable_bytes']} bytes unreadable" in listed.stdout
    assert DATA_FILE in listed.stdout and HIVE in listed.stdout
    # The name comes from the image, not from the dying disk: its SYSTEM hive is damaged.
    assert f"  {UNREADABLE_NAME}  " in listed.stdout
    checked = _cli("verify", "--store", str(store), image)
    assert checked.returncode == 0, checked.stdout  # zeros where unread are not corruption
    assert f"complete, {summary['unreadable_bytes']} bytes unreadable" in checked.stdout
    target = blank_disk(tmp_path / "target.img", small_disk.table.disk_size)
    restored = _cli("restore", "--store", str(store), image, str(target), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"{summary['unreadable_bytes']} bytes were unreadable" in restored.stdout
    for disk in (target, backing):  # unread ranges are not compared on disks
        assert _cli("verify", "--store", str(store), image, "--target",
                    str(disk)).returncode == 0
    _assert_equal_outside(backing, target, [(base + s, n) for s, n in bad])
    assert _sha256(backing) == before  # the source was never written

    # Again, with the data sector readable now and the rest still failing: only the
    # unreadable ranges are read again, every other chunk is reused.
    faulty.arm(*(Fault("read", base + s, base + s + n) for s, n in [layout.record,
                                                                    layout.hive]))
    again = _cli("capture", str(source), "--store", str(store), "--rescue", "--json")
    assert again.returncode == 14, again.stdout + again.stderr
    second = json.loads(again.stdout)
    assert second["image"] != image
    assert second["unreadable_bytes"] == layout.record[1] + layout.hive[1]
    assert second["chunks_new"] <= 2 and second["chunks_reused"] > 0
    assert faulty.state().bytes_read < 16 * MiB  # table, metadata and the retried ranges
    faulty.clear()
    last = _cli("capture", str(source), "--store", str(store), "--rescue", "--json")
    assert last.returncode == 0, last.stdout + last.stderr
    newest = ChunkStore.open(store).load_image(json.loads(last.stdout)["image"])[0]
    assert newest.unreadable_bytes == 0 and newest.format == 2
    # Read from the image's own chunks: the whole hive made it this time.
    assert small_disk.hives_from_fixtures and newest.computer == "WKS-WIN732BITA"
    found = json.loads(_cli("images", "--store", str(store), "--computer", "wks-win7*",
                            "--json").stdout)["images"]
    assert [image["name"] for image in found] == [newest.name]
    assert _cli("verify", "--store", str(store), newest.name, "--target",
                str(backing)).returncode == 0
    assert _sha256(backing) == before


def _assert_equal_outside(source: Path, target: Path, holes: list[Extent],
                          zeroed: bool = True) -> None:
    """`target` equals `source` outside `holes`, and holds zeros in them when `zeroed`
    (a restore writes a new table, not zeros, over unreadable table sectors)."""
    with open(source, "rb") as left, open(target, "rb") as right:
        offset = 0
        while block := left.read(4 * MiB):
            other = bytearray(right.read(len(block)))
            mine = bytearray(block)
            for start, length in clip(sorted(holes), offset, offset + len(block)):
                if zeroed:
                    assert other[start - offset: start - offset + length] == bytes(length)
                mine[start - offset: start - offset + length] = bytes(length)
                other[start - offset: start - offset + length] = bytes(length)
            if mine != other:
                first = next(i for i in range(len(mine)) if mine[i] != other[i])
                pytest.fail(f"restored disk differs at byte {offset + first}")
            offset += len(block)


def test_rescue_time_limit_leaves_the_rest_unread_and_listed(
        small_disk: DemoDisk, mount_faulty: MountFactory, loop_over: LoopFactory,
        tmp_path: Path) -> None:
    layout = _layout(small_disk)
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "source.img"))
    source = loop_over(faulty.disk)
    base = small_disk.windows.start
    faulty.arm(Fault("read", base + layout.data[0], base + sum(layout.data)))
    # No time for any pass after the first: the failing block and the skip after it stay
    # unread, but the capture completes and lists them.
    summary = capture(CaptureRequest(source, tmp_path / "store", rescue=True,
                                     rescue_options=RescueOptions(time_limit=1e-9)))
    manifest = ChunkStore.open(tmp_path / "store").load_image(summary.image)[0]
    listed = [(r.offset, r.length)
              for r in manifest.partition(small_disk.windows.number).unreadable]
    assert clip(listed, *_as_bounds(layout.data)) == [layout.data]
    assert summary.unreadable_bytes > layout.data[1]
    assert summary.stats.reads_retried == 0 and summary.stats.reads_failed > 0


def _as_bounds(extent: Extent) -> tuple[int, int]:
    return extent[0], extent[0] + extent[1]


def test_rescue_stops_when_the_source_is_unplugged_then_resumes(
        small_disk: DemoDisk, mount_faulty: MountFactory, tmp_path: Path) -> None:
    # A pulled drive is not a bad sector: zeros for the rest of the disk would be a lie.
    faulty = mount_faulty(copy_disk(small_disk.path, tmp_path / "source.img"))
    store = tmp_path / "store"
    command = ["capture", str(faulty.disk), "--store", str(store), "--rescue", "--json"]
    faulty.arm(Fault("any", 0, None, "ENODEV", after_bytes=30 * MiB))
    failed = _cli(*command)
    assert failed.returncode == 11, failed.stdout + failed.stderr
    images = ChunkStore.open(store).list_images()
    assert [image.state for image in images] == ["incomplete"]
    faulty.clear()
    done = _cli(*command)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["image"] == images[0].name and summary["chunks_reused"] > 0
    assert summary["unreadable_bytes"] == 0


def test_rescue_stops_when_the_source_file_system_goes_away_then_resumes(
        small_disk: DemoDisk, mount_faulty: MountFactory, tmp_path: Path) -> None:
    # An image file on a FUSE or network file system that went away fails its reads with
    # ENOTCONN or EIO, not ENODEV: a rescue took every following read for a bad sector, and
    # the close of the dead descriptor then ended the job with a traceback (exit 1).
    backing = copy_disk(small_disk.path, tmp_path / "source.img")
    faulty = mount_faulty(backing)
    store = tmp_path / "store"
    command = ["capture", str(faulty.disk), "--store", str(store), "--rescue", "--json"]
    faulty.arm(Fault("read", 0, None, delay=0.01))  # slow enough to be stopped midway
    job = subprocess.Popen([sys.executable, "-m", "recovery", *command], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while faulty.state().bytes_read < 24 * MiB:  # past the plan, into the volumes
            assert job.poll() is None, job.communicate()
            time.sleep(0.05)
        faulty.process.kill()  # the file system goes away under the open descriptor
        out, err = job.communicate(timeout=900)
    finally:
        if job.poll() is None:
            job.kill()
        run_text(["umount", "-l", str(faulty.mountpoint)], check=False)  # a dead mount
    assert job.returncode == 11, out + err
    assert "disappeared" in json.loads(out)["error"]["action"], out
    images = ChunkStore.open(store).list_images()
    assert [image.state for image in images] == ["incomplete"]
    mount_faulty(backing)  # the same file at the same place again
    done = _cli(*command)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["image"] == images[0].name and summary["unreadable_bytes"] == 0
