"""An empty drive prepared for a new image store (exFAT or NTFS), through the safety gate;
checked with blkid, fsck.exfat and ntfsinfo, and by mounting it the way the TUI does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.engine.disks import list_disks
from recovery.engine.storedrive import START, FormatRequest, format_store_drive
from recovery.errors import NotConfirmedError, TargetInUseError
from recovery.sys import losetup, ntfs3g, udev
from recovery.sys.run import run, run_text

MiB = 1024 * 1024
SIZE = 128 * MiB


@pytest.fixture
def empty_drive(tmp_path: Path) -> Iterator[Path]:
    image = tmp_path / "new-stick.img"
    with open(image, "wb") as handle:
        handle.truncate(SIZE)
    with losetup.loop_device(image) as device:
        udev.settle()
        yield device


def test_exfat_store_drive(empty_drive: Path) -> None:
    with pytest.raises(NotConfirmedError):
        format_store_drive(FormatRequest(empty_drive, "exfat"))
    summary = format_store_drive(FormatRequest(empty_drive, "exfat", confirmed=True))
    assert (summary.partition_start, summary.fs) == (START, "exfat")
    table = run_text(["sfdisk", "--dump", str(empty_drive)])
    assert "label: dos" in table and "start=        2048" in table and "type=7" in table
    probe = run_text(["blkid", "-p", "-O", str(START), "-o", "export", str(empty_drive)])
    assert "TYPE=exfat" in probe and "LABEL=RECOVERY" in probe
    with losetup.loop_device(empty_drive, offset=START, size=summary.partition_size,
                             read_only=True) as volume:
        assert run(["fsck.exfat", "-n", str(volume)], check=False).returncode == 0


def test_ntfs_store_drive(empty_drive: Path) -> None:
    summary = format_store_drive(FormatRequest(empty_drive, "ntfs", label="STORE",
                                               confirmed=True))
    info = ntfs3g.ntfsinfo_volume(empty_drive, START, summary.partition_size)
    assert info  # ntfsinfo reads the new volume
    probe = run_text(["blkid", "-p", "-O", str(START), "-o", "export", str(empty_drive)])
    assert "TYPE=ntfs" in probe and "LABEL=STORE" in probe


def test_the_source_disk_is_refused(empty_drive: Path) -> None:
    disks = list_disks()
    with pytest.raises(TargetInUseError, match="disk being read"):
        format_store_drive(FormatRequest(empty_drive, "exfat", confirmed=True,
                                         source=empty_drive), disks)
    assert run_text(["blkid", "-p", "-o", "export", str(empty_drive)], check=False) == ""
