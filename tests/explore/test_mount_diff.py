"""`recovery mount` / `unmount` of a captured partition (read-only store, hashes compared
through the mounted file system) and `recovery diff` between two captures of a PC."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.explore import diff_images
from recovery.errors import UsageError
from recovery.sys import imagefs, ntfs3g
from recovery.ui.cli import main
from tests.explore.conftest import STREAM, CapturedPc


def test_mount_shows_every_file_read_only(ro_store: Path, pc: CapturedPc, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    point = tmp_path / "mnt"
    point.mkdir()
    assert main(["mount", "--store", str(ro_store), "first", str(point), "--json"]) == 0
    mounted = json.loads(capsys.readouterr().out)
    try:
        assert mounted["partition"] == 2 and mounted["fs_type"] == "ntfs"
        for name, data in pc.ntfs_files.items():
            digest = hashlib.sha256((point / name).read_bytes()).hexdigest()
            assert digest == hashlib.sha256(data).hexdigest(), name
        assert os.getxattr(point / "Users/Bob/Documents/report.docx",
                           "user.Zone.Identifier") == STREAM
        with pytest.raises(OSError):
            (point / "new.txt").write_bytes(b"no")
        assert os.statvfs(point).f_flag & os.ST_RDONLY
        with pytest.raises(UsageError, match="in use or not empty"):
            imagefs.mount_image(ro_store, "first", None, point)
    finally:
        assert main(["unmount", str(point)]) == 0
    assert not os.path.ismount(point)
    assert not os.path.ismount(mounted["fuse_dir"])
    assert not Path(mounted["fuse_dir"]).exists()
    with pytest.raises(OSError):
        os.kill(mounted["pid"], 0)  # the daemon is gone
    assert main(["unmount", str(point)]) == 2  # nothing mounted there any more
    assert "Nothing was mounted" in capsys.readouterr().err


def test_diff_between_two_captures(pc: CapturedPc, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    shutil.copytree(pc.store, store, copy_function=os.link)  # chunks are never rewritten
    disk = tmp_path / "pc.img"
    subprocess.run(["cp", "--sparse=always", str(pc.disk), str(disk)], check=True)
    start, size = _partition(disk, 2)
    with ntfs3g.mount(disk, start, tmp_path / "mnt", True, size=size) as root:
        (root / "Users/Bob/Documents/new.txt").write_bytes(b"new file")
        (root / "Many/file0001.txt").unlink()
        (root / "Users/Bob/Documents/report.docx").write_bytes(b"rewritten")
    capture(CaptureRequest(disk, store, name="second"))
    diff = diff_images(store, "first", "second")
    assert [e.path for e in diff.added] == ["/Users/Bob/Documents/new.txt"]
    assert [e.path for e in diff.removed] == ["/Many/file0001.txt"]
    changed = {new.path for _, new in diff.changed}
    assert "/Users/Bob/Documents/report.docx" in changed
    assert changed <= {"/Users/Bob/Documents/report.docx", "/Users/Bob/Documents", "/Many"}
    assert main(["diff", "--store", str(store), "first", "second", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in document["added"]] == ["/Users/Bob/Documents/new.txt"]


def _partition(disk: Path, number: int) -> tuple[int, int]:
    from recovery.engine.table import read_table
    from recovery.sys.blockdev import BlockDevice

    with BlockDevice.open(disk) as device:
        table = read_table(device)
    part = next(p for p in table.partitions if p.number == number)
    return part.start, part.size
