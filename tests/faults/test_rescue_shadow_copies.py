"""Which shadow copy still holds a readable copy of a file a rescue lost, on the shared
fixture volume whose two shadow copies Windows made (README of /work/shared/fixtures):
the function on the volume directly, and a real rescue capture through faultyfs.

The fixture's files are small (resident in their MFT records). The MFT block holding
records 28-43 changed after both shadow copies were taken, so both keep their own copy
of it in their diff area: with the live record of `another_file` unreadable, the second
copy (the only one that has the file) still gives it back, unless its diff-area block is
unreadable too.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from recovery.engine.table import write_table
from recovery.model.extents import Extent, clip
from recovery.model.layout import PartitionTable, TablePartition
from recovery.registry.shadowcopies import ShadowCopies
from recovery.sys.blockdev import BlockDevice
from recovery.sys.slice import RandomAccessFile
from recovery.units import MiB
from tests.faults.conftest import LoopFactory, MountFactory
from tests.faults.faultyfs import Fault
from tests.faults.test_rescue import _cli, _sha256
from tests.fsbuild import raw_fixture_volume

MFT = 357912576  # the fixture volume's $MFT (volume offset)
ANOTHER_FILE = (MFT + 39 * 1024, 1024)  # its MFT record, in the live volume
SECOND_COPY_DIFF = [(115851264, 16384), (123420672, 16384)]  # vss-2's copy of that block
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


class _Refusing(RandomAccessFile):
    """The raw volume, refusing `bad` as a rescue image view does."""

    def __init__(self, path: Path, bad: list[Extent]) -> None:
        super().__init__(path.stat().st_size)
        self.handle = open(path, "rb")  # noqa: SIM115 - closed with the test's tmp_path
        self.bad = bad

    def read_at(self, offset: int, length: int) -> bytes:
        if clip(self.bad, offset, offset + length):
            raise OSError(errno.EIO, "unreadable")
        self.handle.seek(offset)
        return self.handle.read(length)


@pytest.fixture(scope="module")
def vss_volume(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return raw_fixture_volume(fixtures_dir / "volumes" / "ntfs-vss-2stores.qcow2",
                              tmp_path_factory.mktemp("vss") / "vss.raw").image


@pytest.mark.parametrize(("bad", "statuses", "note"), [
    ([ANOTHER_FILE], ["absent", "readable"],
     "shadow copy vss-2 of 2013-12-03 06:37 UTC holds a readable copy"),
    ([ANOTHER_FILE, *SECOND_COPY_DIFF], ["absent", "unreadable"],
     "none of the volume's 2 shadow copies holds a readable copy (1 of them has it, but "
     "reading it hits unreadable bytes)"),
])
def test_which_shadow_copy_holds_a_readable_copy(vss_volume: Path, bad: list[Extent],
                                                 statuses: list[str], note: str) -> None:
    copies = ShadowCopies(lambda: _Refusing(vss_volume, bad))
    try:
        assert copies.count == 2
        found = copies.check("\\another_file")
        assert [(c.point, c.status) for c in found] == list(zip(["vss-1", "vss-2"], statuses,
                                                                strict=True))
        assert found[1].created.isoformat(timespec="seconds") == "2013-12-03T06:37:48+00:00"
        assert copies.note("\\another_file") == note
        # Created after both copies: none has it.
        assert copies.note("\\password.txt") == \
            "none of the volume's 2 shadow copies holds a readable copy"
        assert [c.status for c in copies.check("\\syslog.gz", hive=True)][1] == "unreadable"
    finally:
        copies.close()


def test_rescue_names_the_shadow_copy_of_a_lost_file(
        vss_volume: Path, tmp_path: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory) -> None:
    size = vss_volume.stat().st_size
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as handle:
        handle.truncate(size + 2 * MiB)
    write_table(disk, PartitionTable(
        "gpt", 512, size + 2 * MiB, "0B5E1C34-6A2A-4B8E-9D5B-2C6B0F2A7E11",
        (TablePartition(1, MiB, size, BASIC_DATA, "5D0A4C2E-1B3F-4E7A-8C9D-0E1F2A3B4C5D",
                        "Basic data partition"),),
        first_usable_lba=34, last_usable_lba=(size + 2 * MiB) // 512 - 34))
    with BlockDevice.open(disk, writable=True) as writer, open(vss_volume, "rb") as volume:
        offset = 0
        while block := volume.read(8 * MiB):
            writer.write_at(MiB + offset, block)
            offset += len(block)
        writer.flush()
    before = _sha256(disk)
    faulty = mount_faulty(disk)
    source = loop_over(faulty.disk)
    faulty.arm(Fault("read", MiB + ANOTHER_FILE[0], MiB + sum(ANOTHER_FILE)))
    done = _cli("capture", str(source), "--store", str(tmp_path / "store"), "--rescue",
                "--json")
    assert done.returncode == 14, done.stdout + done.stderr
    part = json.loads(done.stdout)["partitions"][0]
    assert [(r["offset"], r["length"]) for r in part["unreadable"]] == [ANOTHER_FILE]
    lost = {d["path"]: d for d in part["damaged"]}
    assert lost["\\another_file"]["kind"] == "mft-record"
    assert "shadow copy vss-2 of 2013-12-03 06:37 UTC holds a readable copy" in \
        lost["\\another_file"]["note"]
    faulty.clear()
    assert _sha256(disk) == before
