"""A restore-point rollback inside the live image (issue 5, end-to-end list 4).

The host builds a GPT disk whose Windows partition is an NTFS volume with a corrupt SYSTEM
hive and a Volume Shadow Copy (restore point) holding the good one; the guest rolls SYSTEM
back as the unattended service does (in the shell boot conftest's bios_guest shares, the
disk on virtio); the host then checks the hive and the file system.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from recovery.sys import ntfs3g
from recovery.sys.run import run
from tests.conftest import unpack_hive
from tests.e2e.conftest import BiosGuest
from tests.e2e.test_unattended import guest_job
from tests.vsstool.builder import Snapshot, build_vss_volume

MiB = 1 << 20
VOLUME_START = 1 * MiB
VOLUME_SIZE = 96 * MiB
CONFIG = "Windows/System32/config"
SERIAL = "VIRTIO-SYS-0001"  # the virtio disk conftest's bios_guest adds
HIVES = ("SYSTEM", "SAM", "corrupted_system_hive", "SYSTEM_B.LOG1")


def make_broken_windows_disk(tmp_path: Path, hives: dict[str, bytes]) -> Path:
    """GPT disk, one basic data partition: current SYSTEM corrupt, the point's SYSTEM good."""
    volume = tmp_path / "volume.img"
    point = Snapshot(datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
                     {f"{CONFIG}/SYSTEM": hives["SYSTEM"], f"{CONFIG}/SAM": hives["SAM"]})
    build = tmp_path / "vss-build"
    build.mkdir()
    build_vss_volume(volume, VOLUME_SIZE, [point], {
        f"{CONFIG}/SYSTEM": hives["corrupted_system_hive"],
        f"{CONFIG}/SYSTEM.LOG1": hives["SYSTEM_B.LOG1"], f"{CONFIG}/SYSTEM.LOG2": b""}, build)
    disk = tmp_path / "windows.img"
    with open(disk, "wb") as handle:
        handle.truncate(VOLUME_START + VOLUME_SIZE + MiB)
    first = VOLUME_START // 512
    run(["sgdisk", f"--new=1:{first}:{first + VOLUME_SIZE // 512 - 1}", "--typecode=1:0700",
         "--change-name=1:Basic data partition", str(disk)])
    with open(volume, "rb") as source, open(disk, "r+b") as target:
        target.seek(VOLUME_START)
        while block := source.read(8 * MiB):
            target.write(block)
    volume.unlink()
    return disk


def broken_windows_disk(tmp_path: Path) -> Path:
    """make_broken_windows_disk with the hives of tests/data (for conftest's bios_guest)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return make_broken_windows_disk(tmp_path, {name: unpack_hive(f"{name}.xz", tmp_path)
                                               .read_bytes() for name in HIVES})


def read_hive(disk: Path, mountpoint: Path, name: str) -> bytes:
    with ntfs3g.mount(disk, VOLUME_START, mountpoint, False, size=VOLUME_SIZE) as root:
        return (root / CONFIG / name).read_bytes()


def test_rollback_of_the_system_hive_in_the_guest(bios_guest: BiosGuest,
                                                  tmp_path: Path) -> None:
    hives = {name: unpack_hive(f"{name}.xz", tmp_path).read_bytes() for name in HIVES}
    disk = bios_guest.rollback  # the guest has not written it yet: only this test does
    assert read_hive(disk, tmp_path / "before", "SYSTEM") == hives["corrupted_system_hive"]

    verdict, report, _ = guest_job(bios_guest.vm,
                                   f"recovery.run=rollback recovery.volume={SERIAL} "
                                   "recovery.point=vss-1 recovery.hive=SYSTEM recovery.yes=1")
    assert verdict == "PASS", report
    bios_guest.vm.shell("sync")
    result = report["result"]
    assert isinstance(result, dict) and result["verified"] is True, report

    digest = hashlib.sha256
    assert digest(read_hive(disk, tmp_path / "after", "SYSTEM")).hexdigest() == \
        digest(hives["SYSTEM"]).hexdigest()
    assert read_hive(disk, tmp_path / "after", "SAM") == hives["SAM"]  # not asked for
    assert read_hive(disk, tmp_path / "after", "SYSTEM.LOG1") == b""  # no stale log replay
    check = ntfs3g.ntfsfix_check(disk, VOLUME_START, VOLUME_SIZE)
    assert check.ok, check.output
