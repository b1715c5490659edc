"""Every command whose --store names an image store takes a store URL too (issue 13), here
over a real sshd on 127.0.0.1: `restore-points list --store URL NAME` and `files --store
URL NAME` read a captured image on the share."""

from __future__ import annotations

from pathlib import Path

from tests.explore.test_image_points import make_vss_disk
from tests.netstore.servers import SshServer
from tests.netstore.test_ssh_store import cli, credentials


def test_restore_points_and_files_of_an_image_on_a_store_url(
        ssh_server: SshServer, fixtures_dir: Path, tmp_path: Path) -> None:
    disk = make_vss_disk(fixtures_dir, tmp_path)
    creds = credentials(ssh_server, tmp_path, key=True)
    url = ssh_server.url("shop")
    code, _, log = cli("capture", disk, "--store", url, "--credentials", creds,
                       "--name", "vss")
    assert code == 0, log
    code, listed, log = cli("restore-points", "list", "--store", url, "--credentials",
                            creds, "vss")
    assert code == 0, log
    assert [point["id"] for point in listed["points"]] == ["vss-2", "vss-1"]
    code, files, log = cli("files", "--store", url, "--credentials", creds, "vss")
    assert code == 0 and files.get("entries"), log
