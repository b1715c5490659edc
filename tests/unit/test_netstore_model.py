"""Store URLs, credentials files, the cifs secrets file and unattended network stores."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from recovery.errors import UsageError
from recovery.model.netstore import Secret, parse_url, read_credentials
from recovery.sys import cifs
from recovery.ui.unattended import cli_arguments, parse_cmdline


def test_smb_url_with_domain_port_and_forced_version() -> None:
    url = parse_url("smb://OFFICE;tech@nas.local:1445/images/shop/2026?vers=2.1")
    assert (url.scheme, url.domain, url.user, url.server, url.port) == (
        "smb", "OFFICE", "tech", "nas.local", 1445)
    assert url.path == ("images", "shop", "2026") and url.smb_version == "2.1"
    assert url.display() == "smb://OFFICE;tech@nas.local:1445/images/shop/2026?vers=2.1"


def test_nfs_and_ssh_urls_default_ports() -> None:
    assert parse_url("nfs://nas/export/images").port_or_default == 2049
    ssh = parse_url("ssh://tech@[fd00::5]/srv/images")
    assert ssh.server == "fd00::5" and ssh.port_or_default == 22
    assert ssh.display() == "ssh://tech@[fd00::5]/srv/images"


def test_nfs_url_with_the_mount_port_of_an_nfs3_server() -> None:
    url = parse_url("nfs://nas:2049/export/images?mountport=20048")
    assert (url.port, url.mount_port, url.path) == (2049, 20048, ("export", "images"))
    assert url.display() == "nfs://nas:2049/export/images?mountport=20048"
    for bad in ("nfs://nas/x?mountport=0", "nfs://nas/x?mountport=abc", "nfs://nas/x?vers=3",
                "nfs://nas/x?mountport=1&mountport=2"):
        with pytest.raises(UsageError, match=r"\?mountport="):
            parse_url(bad)
    with pytest.raises(UsageError, match=r"\?vers= is for smb:// only"):
        parse_url("ssh://tech@nas/x?mountport=1")


def test_password_in_url_is_refused_and_never_echoed() -> None:
    with pytest.raises(UsageError) as caught:
        parse_url("smb://tech:Sup3rSecret@nas/images")
    assert "Sup3rSecret" not in str(caught.value) and "***" in caught.value.title


def test_secret_never_shows() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in f"{secret} {secret!r} {[secret]} {({'p': secret})}"
    assert secret.reveal() == "hunter2"


def test_credentials_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    path = tmp_path / "nas.cred"
    path.write_text("# shop NAS\nuser=tech\npassword= p=ss word \ndomain=OFFICE\n"
                    "key=keys/id_ed25519\nknown_hosts=keys/known_hosts\n")
    creds = read_credentials(path)
    assert creds.username == "tech" and creds.domain == "OFFICE"
    assert creds.password is not None and creds.password.reveal() == "p=ss word"
    assert creds.identity_file == tmp_path / "keys" / "id_ed25519"
    assert creds.known_hosts == tmp_path / "keys" / "known_hosts"
    assert "p=ss" not in repr(creds)


def test_bad_credentials_line_is_not_quoted(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_text("username=tech\nhunter2\n")
    with pytest.raises(UsageError, match="Line 2") as caught:
        read_credentials(path)
    assert "hunter2" not in str(caught.value)


def test_cifs_secrets_file_is_private_and_removed(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(cifs, "SECRETS_DIR", tmp_path / "secrets")
    with cifs._credentials_file("tech", Secret("hunter2"), "OFFICE") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert path.read_text() == "username=tech\npassword=hunter2\ndomain=OFFICE\n"
    assert not path.exists()


def test_unattended_network_store_and_credentials_stick() -> None:
    job = parse_cmdline("quiet recovery.run=capture recovery.source=SER1 "
                        "recovery.store=smb://tech@10.0.2.100/images/shop "
                        "recovery.credentials=STICK:/nas.cred")
    assert job is not None and job.store is not None and job.credentials is not None
    assert job.store.url == "smb://tech@10.0.2.100/images/shop"
    assert (job.credentials.label, job.credentials.path) == ("STICK", "/nas.cred")
    argv = cli_arguments(job, job.store.url, lambda serial: "/dev/sda",
                         Path("/mnt/stick/nas.cred"))
    assert argv == ["capture", "/dev/sda", "--store", "smb://tech@10.0.2.100/images/shop",
                    "--credentials", "/mnt/stick/nas.cred", "--json"]


@pytest.mark.parametrize("cmdline", [
    "recovery.run=verify recovery.image=x recovery.store=smb://u:pw@nas/s",
    "recovery.run=verify recovery.image=x recovery.store=smb://nas/s",
    "recovery.run=verify recovery.image=x recovery.store=L:/s recovery.credentials=STICK",
])
def test_unattended_bad_network_options(cmdline: str) -> None:
    with pytest.raises(UsageError):
        parse_cmdline(cmdline)
