"""The command line as scripts and the unattended mode use it: JSON documents, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from recovery.demo.disk import DemoDisk
from recovery.errors import ImageIncompleteError
from recovery.sys import ntfs3g


def _cli(*argv: str) -> tuple[int, Any]:
    result = subprocess.run([sys.executable, "-m", "recovery", *argv, "--json"],
                            capture_output=True, text=True, timeout=600)
    return result.returncode, json.loads(result.stdout)


def test_capture_images_restore_verify_json(small_disk: DemoDisk, tmp_path: Path) -> None:
    store, target = tmp_path / "store", tmp_path / "target.img"
    code, captured = _cli("capture", str(small_disk.path), "--store", str(store),
                          "--name", "pc", "--partitions", "system,boot")
    assert code == 0 and captured["image"] == "pc"
    assert captured["chunks_new"] > 0 and captured["bytes_read"] > 0
    roles = {p["role"]: p["selected"] for p in captured["partitions"]}
    assert roles == {"boot": True, "reserved": False, "system": True}

    (store / "images" / "half.partial").mkdir()  # what an interrupted capture leaves
    code, listed = _cli("images", "--store", str(store))
    states = {image["name"]: image["complete"] for image in listed["images"]}
    assert code == 0 and states == {"pc": True, "half": False}
    code, error = _cli("verify", "--store", str(store), "half")
    assert code == ImageIncompleteError.code and error["error"]["kind"] == "image-incomplete"

    with open(target, "wb") as handle:
        handle.truncate(small_disk.table.disk_size)
    code, restored = _cli("restore", "--store", str(store), "pc", str(target), "--yes")
    assert code == 0 and restored["verified"] is True
    assert restored["chunks_written"] > 0 and restored["chunks_skipped"] == 0
    assert restored["bytes_written"] > 0
    code, checked = _cli("verify", "--store", str(store), "pc", "--target", str(target))
    assert code == 0 and checked["ok"] and checked["problems"] == []


def test_hibernated_windows_is_captured_with_a_warning(small_disk: DemoDisk,
                                                       tmp_path: Path) -> None:
    disk = tmp_path / "hibernated.img"
    shutil.copyfile(small_disk.path, disk)
    windows = small_disk.windows
    with tempfile.TemporaryDirectory() as mnt, \
            ntfs3g.mount(disk, windows.start, Path(mnt), read_write=True, size=windows.size):
        (Path(mnt) / "hiberfil.sys").write_bytes(b"HIBR" + bytes(1024 * 1024))
    code, captured = _cli("capture", str(disk), "--store", str(tmp_path / "store"))
    assert code == 0
    assert any("hibernat" in warning.lower() for warning in captured["warnings"])
    manifest = next((tmp_path / "store" / "images").glob("*/manifest.yaml")).read_text()
    assert "hibernat" in manifest.lower()


def test_disks_json_lists_a_loop_device(small_disk: DemoDisk) -> None:
    from recovery.sys import losetup

    with losetup.loop_device(small_disk.path, read_only=True) as device:
        subprocess.run(["udevadm", "settle"], check=False)
        code, listing = _cli("disks", "--store", str(small_disk.path.parent))
    assert code == 0
    holders = [d["node"] for d in listing["disks"] if d["holds_store"]]
    assert holders and str(device) not in holders
    found = [d for d in listing["disks"] if d["node"] == str(device)]
    assert found and found[0]["stable_id"].startswith("loop:")
    assert found[0]["size"] == small_disk.table.disk_size


def test_demo_runs_and_passes(tmp_path: Path) -> None:
    code, report = _cli("demo", "--workdir", str(tmp_path / "demo"))
    assert code == 0 and report["ok"], report
    names = [step["name"] for step in report["steps"]]
    assert names == ["build", "capture", "capture again", "damage", "restore --delta",
                     "verify"]
