"""The shared fixture volume with two real shadow copies, captured inside a disk image:
both restore points are listed from the image, the store being read-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.explore import image_restore_points
from recovery.engine.roles import BASIC_DATA
from recovery.engine.table import write_table
from recovery.model.layout import PartitionTable, TablePartition
from recovery.sys.run import run
from recovery.ui.cli import main
from recovery.units import MiB
from tests.explore.conftest import read_only_bind


def make_vss_disk(fixtures_dir: Path, tmp_path: Path) -> Path:
    """A GPT disk image whose one partition is the fixture volume with two shadow copies."""
    volume = tmp_path / "vss.raw"
    run(["qemu-img", "convert", "-O", "raw",
         str(fixtures_dir / "volumes" / "ntfs-vss-2stores.qcow2"), str(volume)])
    size = volume.stat().st_size
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as handle:
        handle.truncate(size + 4 * MiB)
    write_table(disk, PartitionTable("gpt", 512, size + 4 * MiB, "", (
        TablePartition(1, MiB, size, BASIC_DATA, name="Basic data partition"),)))
    run(["dd", f"if={volume}", f"of={disk}", "bs=1M", f"seek={MiB}", "oflag=seek_bytes",
         "conv=sparse,notrunc", "status=none"])
    volume.unlink()
    return disk


def test_shadow_copies_listed_from_the_image(fixtures_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    disk = make_vss_disk(fixtures_dir, tmp_path)
    capture(CaptureRequest(disk, tmp_path / "store", name="vss"))
    with read_only_bind(tmp_path / "store", tmp_path / "ro") as store:
        report = image_restore_points(store, "vss")
        points = report.listing.points
        assert [(p.id, p.created.isoformat(timespec="seconds")) for p in points] == [
            ("vss-2", "2013-12-03T06:37:48+00:00"), ("vss-1", "2013-12-03T06:35:09+00:00")]
        assert points[1].detail["store_id"] == "600f0b69-5bdf-11e3-9d6c-005056c00008"
        assert report.volume.partition == 1
        assert main(["restore-points", "list", "--store", str(store), "vss", "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert [p["id"] for p in document["points"]] == ["vss-2", "vss-1"]
