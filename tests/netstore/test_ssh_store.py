"""Image stores over SSH (sshfs): real captures, restores and verifies through a real sshd
on 127.0.0.1; secrets never shown; bad input and a server that goes away mid-job."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recovery.demo.disk import DemoDisk
from recovery.errors import LoginError, NetworkError, StoreReadOnlyError, UsageError
from tests.netstore.servers import SshServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: object, stdin: str | None = None) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run([sys.executable, "-m", "recovery", "-v", *map(str, argv), "--json"],
                          capture_output=True, text=True, timeout=900, input=stdin,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    document = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, document, done.stdout + done.stderr


def credentials(server: SshServer, tmp_path: Path, *, password: str | None = None,
                key: bool = False) -> Path:
    path = tmp_path / "store.credentials"
    lines = [f"known_hosts={server.known_hosts}"]
    if password is not None:
        lines.append(f"password={password}")
    if key:
        lines.append(f"identity_file={server.client_key}")
    path.write_text("\n".join(lines) + "\n")
    return path


def no_secret_anywhere(server: SshServer, output: str) -> None:
    secret = server.password.encode()
    assert server.password not in output
    for path in server.root.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_capture_verify_restore_over_ssh_with_a_password(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    creds = credentials(ssh_server, tmp_path, password=ssh_server.password)
    url = ssh_server.url("shop/images")
    code, captured, log = cli("capture", small_disk.path, "--store", url, "--credentials",
                              creds, "--name", "pc1")
    assert code == 0, log
    store = ssh_server.root / "shop" / "images"
    assert (store / "images" / "pc1" / "manifest.yaml").is_file()  # on the server's disk
    assert captured["chunks_new"] > 0
    code, listed, log2 = cli("images", "--store", url, "--credentials", creds)
    assert code == 0 and [i["name"] for i in listed["images"]] == ["pc1"]
    assert listed["images"][0]["computer"] == "WKS-WIN732BITA"
    code, verified, log3 = cli("verify", "--store", url, "--credentials", creds, "pc1")
    assert code == 0 and verified["ok"], log3
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(small_disk.path.stat().st_size)
    code, _, log4 = cli("restore", "--store", url, "--credentials", creds, "pc1",
                               target, "--yes")
    assert code == 0, log4
    code, checked, log5 = cli("verify", "--store", url, "--credentials", creds, "pc1",
                              "--target", target)
    assert code == 0 and checked["ok"], log5
    no_secret_anywhere(ssh_server, log + log2 + log3 + log4 + log5)
    assert "password_stdin" in log  # the -v log shows the sshfs call, without the password
    assert not list(Path("/run/recovery/net").glob("ssh-127.0.0.1-*")) or all(
        not os.path.ismount(p) for p in Path("/run/recovery/net").iterdir())


def test_ssh_key_login_a_second_capture_reuses_chunks_then_delete_and_prune(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    """`delete` and `prune` take a store URL too: a chunk the other image uses stays."""
    creds = credentials(ssh_server, tmp_path, key=True)
    url = ssh_server.url("images")
    assert cli("capture", small_disk.path, "--store", url, "--credentials", creds,
               "--name", "first")[0] == 0
    code, second, log = cli("capture", small_disk.path, "--store", url, "--credentials",
                            creds, "--name", "second", "--read-all")
    assert code == 0, log
    assert second["chunks_new"] == 0 and second["chunks_reused"] > 0
    chunks = ssh_server.root / "images" / "chunks"
    stored = sorted(chunks.rglob("*"))
    for name, removed in (("first", 0), ("second", second["chunks_reused"])):
        code, _, log = cli("delete", "--store", url, "--credentials", creds, name, "--yes")
        assert code == 0, log
        code, pruned, log = cli("prune", "--store", url, "--credentials", creds)
        assert code == 0 and pruned["chunks_removed"] == removed, log
        if not removed:
            assert sorted(chunks.rglob("*")) == stored
    assert not [p for p in chunks.rglob("*") if p.is_file()]


def test_password_never_on_a_command_line_while_mounted(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    """Look at every process's argv and environment while a capture runs over SSH."""
    creds = credentials(ssh_server, tmp_path, password=ssh_server.password)
    process = subprocess.Popen(
        [sys.executable, "-m", "recovery", "capture", str(small_disk.path), "--store",
         ssh_server.url("images"), "--credentials", str(creds), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ,
                                                              "PYTHONPATH": str(ROOT)})
    seen_mount = False
    secret = ssh_server.password.encode()
    while process.poll() is None:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc / "cmdline").read_bytes()
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            assert secret not in cmdline and secret not in environ, cmdline
            seen_mount = seen_mount or cmdline.startswith(b"sshfs\0")
        time.sleep(0.01)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    assert seen_mount  # the check ran while sshfs was up


def test_wrong_password_names_the_server(ssh_server: SshServer, small_disk: DemoDisk,
                                         tmp_path: Path) -> None:
    creds = credentials(ssh_server, tmp_path, password="not-the-password")
    code, result, log = cli("images", "--store", ssh_server.url("images"), "--credentials",
                            creds)
    assert code == LoginError.code, log
    assert "127.0.0.1 refused the login" in result["error"]["title"]
    assert "not-the-password" not in log


def test_unknown_host_key_is_refused_with_its_fingerprint(ssh_server: SshServer,
                                                         tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    creds = tmp_path / "c"
    creds.write_text(f"known_hosts={empty}\nidentity_file={ssh_server.client_key}\n")
    fingerprint = ssh_server.host_key_fingerprint()
    code, result, log = cli("images", "--store", ssh_server.url("x"), "--credentials", creds)
    assert code == LoginError.code, log
    assert "host key of 127.0.0.1 is not known" in result["error"]["title"]
    assert fingerprint in result["error"]["title"]
    assert empty.read_text() == ""  # nothing trusted without the technician


def test_changed_host_key_is_refused(ssh_server: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{ssh_server.port} {kind} {key}\n")
    creds = tmp_path / "c"
    creds.write_text(f"known_hosts={wrong}\nidentity_file={ssh_server.client_key}\n")
    code, result, log = cli("images", "--store", ssh_server.url("x"), "--credentials", creds)
    assert code == LoginError.code, log
    assert "is not the one in" in result["error"]["title"]


def test_refused_connection_names_server_and_port(tmp_path: Path) -> None:
    port = free_port()
    known = tmp_path / "kh"
    known.write_text(f"[127.0.0.1]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n")
    creds = tmp_path / "c"
    creds.write_text(f"known_hosts={known}\n")
    code, result, log = cli("images", "--store", f"ssh://u@127.0.0.1:{port}/x",
                            "--credentials", creds)
    assert code == NetworkError.code, log
    assert f"127.0.0.1 refused the connection on port {port}" in result["error"]["title"]


def test_store_path_that_is_a_file(ssh_server: SshServer, tmp_path: Path) -> None:
    (ssh_server.root / "afile").write_text("not a folder")
    creds = credentials(ssh_server, tmp_path, key=True)
    code, result, log = cli("images", "--store", ssh_server.url("afile"), "--credentials",
                            creds)
    assert code != 0 and result["error"]["kind"] in ("store", "network"), log
    assert "afile" in result["error"]["title"]


def test_read_only_share_is_named_and_nothing_is_written(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    """A store the share's user may read but not write (made by another account): the
    capture is refused before anything is stored, naming the store and what to do."""
    from recovery.store.objects import ChunkStore
    store = ssh_server.root / "theirs"
    ChunkStore.open(store, create=True)  # owned by root: the SSH user cannot write in it
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    creds = credentials(ssh_server, tmp_path, key=True)
    code, result, log = cli("capture", small_disk.path, "--store", ssh_server.url("theirs"),
                            "--credentials", creds, "--name", "pc1")
    assert code == StoreReadOnlyError.code, log
    assert "is read-only" in result["error"]["title"], log
    assert "read-write" in result["error"]["action"], log
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


def on_a_terminal(argv: list[str], answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run `recovery ARGV` with a pseudo-terminal as its controlling terminal (getpass reads
    /dev/tty); each answer is typed once its prompt is shown. Returns (exit code, screen)."""
    master, slave = os.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    process = subprocess.Popen([sys.executable, "-m", "recovery", *argv], stdin=slave,
                               stdout=slave, stderr=slave, preexec_fn=own_terminal,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    screen = b""
    for prompt, answer in [*answers, ("", "")]:  # the last: read to the end
        deadline = time.monotonic() + 300
        while (prompt.encode() not in screen or not prompt) and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            try:
                chunk = os.read(master, 4096) if ready else b""
            except OSError:  # EIO: the program ended and closed the terminal
                break
            if ready and not chunk:
                break
            screen += chunk
        assert prompt.encode() in screen, screen.decode(errors="replace")
        if answer:
            os.write(master, answer.encode() + b"\n")
    os.close(master)
    return process.wait(timeout=300), screen.decode(errors="replace")


def test_cli_at_a_terminal_asks_the_host_key_then_a_hidden_password(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    """No key, an empty known_hosts: the fingerprint is shown and trusted with `yes`, the
    key login fails, the password is asked without echo; the store opens."""
    from recovery.store.objects import ChunkStore
    ChunkStore.open(ssh_server.root / "shop", create=True)
    known = tmp_path / "known_hosts"
    known.write_text("")
    creds = tmp_path / "c"
    creds.write_text(f"known_hosts={known}\n")
    fingerprint = ssh_server.host_key_fingerprint()
    code, screen = on_a_terminal(
        ["images", "--store", ssh_server.url("shop"), "--credentials", str(creds)],
        [("Type yes or no: ", "yes"), ("Password for ", ssh_server.password)])
    assert code == 0, screen
    assert fingerprint in screen and "No images in this store yet." in screen, screen
    assert ssh_server.password not in screen  # not echoed
    assert f"127.0.0.1]:{ssh_server.port}" in known.read_text()  # trusted, remembered


@pytest.mark.parametrize(("url", "why"), [
    ("ssh://127.0.0.1/srv/images", "needs a user"),
    ("ssh://u:secret123@127.0.0.1/srv", "holds a password"),
    ("ftp://u@127.0.0.1/srv", "is not smb, nfs or ssh"),
    ("ssh://u@127.0.0.1:70000/srv", "port"),
    ("smb://u@nas/", "names no share"),
    ("nfs://nas/a/../b", "'..'"),
    ("smb://u@nas/share?vers=7", "?vers="),
])
def test_malformed_store_urls(url: str, why: str) -> None:
    code, result, log = cli("images", "--store", url)
    assert code == UsageError.code, log
    assert why in result["error"]["title"]
    assert "secret123" not in log


def job_losing_its_server(server: SshServer, argv: list[str],
                          started: Callable[[], bool]) -> tuple[int, dict[str, Any], str]:
    """Run `recovery ARGV --json`; once `started()` holds, stop the SSH server while the job
    is held still (SIGSTOP), so the server goes away in the middle of its work; then let the
    job run on to its end. Returns (exit code, its JSON, stdout + stderr)."""
    process = subprocess.Popen([sys.executable, "-m", "recovery", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 300
    while not started() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(process.pid, 19)  # SIGSTOP: the server goes away while the job holds its lock
    server.stop()
    os.kill(process.pid, 18)  # SIGCONT
    stdout, stderr = process.communicate(timeout=600)
    return process.returncode, json.loads(stdout), stdout + stderr


def test_server_gone_mid_capture_then_the_same_capture_completes(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    creds = credentials(ssh_server, tmp_path, key=True)
    url = ssh_server.url("images")
    argv = ["capture", str(small_disk.path), "--store", url, "--credentials", str(creds),
            "--name", "gone", "--json"]
    partial = ssh_server.root / "images" / "images" / "gone.partial"
    code, result, output = job_losing_its_server(ssh_server, argv, partial.is_dir)
    assert code == NetworkError.code, output
    assert "server 127.0.0.1 stopped answering during the capture" in result["error"]["title"]
    assert "resumes" in result["error"]["action"]
    ssh_server.start()
    code, _, log = cli("images", "--store", url, "--credentials", creds)
    assert code == 0, log
    code, _, log = cli("capture", small_disk.path, "--store", url, "--credentials", creds,
                          "--name", "gone")
    assert code == 0, log
    code, verified, log = cli("verify", "--store", url, "--credentials", creds, "gone")
    assert code == 0 and verified["ok"], log


@contextlib.contextmanager
def exfat_stick(tmp_path: Path) -> Iterator[Path]:
    """A real exFAT file system on a loop device, mounted: a technician's USB stick. (The
    host kernel has no vfat; exfat-fuse shows every file as 0777, the live kernel's vfat
    and exfat as 0755: no modes to set, either way.)"""
    image = tmp_path / "stick.img"
    with open(image, "wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    mountpoint = tmp_path / "stick"
    mountpoint.mkdir()
    try:
        subprocess.run(["mkfs.exfat", "-L", "STICK", loop], check=True, capture_output=True)
        subprocess.run(["mount", "-t", "exfat-fuse", loop, str(mountpoint)], check=True,
                       capture_output=True)
        try:
            yield mountpoint
        finally:
            subprocess.run(["umount", str(mountpoint)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)


def test_ssh_key_from_an_exfat_stick_logs_in_and_leaves_no_copy(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    """(ex)FAT has no modes: the key there reads as 0755/0777 and OpenSSH ignores such a
    key. The job uses a private copy and removes it; the key is never printed."""
    with exfat_stick(tmp_path) as stick:
        shutil.copy(ssh_server.client_key, stick / "nas_key")
        shutil.copy(ssh_server.known_hosts, stick / "known_hosts")
        (stick / "nas.cred").write_text("identity_file=nas_key\nknown_hosts=known_hosts\n")
        assert (stick / "nas_key").stat().st_mode & 0o077  # what ssh refuses
        url = ssh_server.url("images")
        code, _, log = cli("capture", small_disk.path, "--store", url, "--credentials",
                           stick / "nas.cred", "--name", "fromstick")
        assert code == 0, log
        code, listed, log2 = cli("images", "--store", url, "--credentials", stick / "nas.cred")
        assert code == 0 and [i["name"] for i in listed["images"]] == ["fromstick"], log2
        secret = (stick / "nas_key").read_text().splitlines()[1]
        assert secret not in log + log2
    # Other jobs on this machine keep their own copies while they run: look for this key.
    assert ssh_server.client_key.read_bytes() not in secret_files()


def secret_files() -> list[bytes]:
    """The contents of the private copies in /run/recovery/secrets now."""
    contents = []
    for path in Path("/run/recovery/secrets").glob("ssh-key-*"):
        with contextlib.suppress(FileNotFoundError):  # another job just removed it
            contents.append(path.read_bytes())
    return contents


def test_unreadable_ssh_key_is_named(ssh_server: SshServer, tmp_path: Path) -> None:
    creds = tmp_path / "nas.cred"
    creds.write_text(f"identity_file=missing_key\nknown_hosts={ssh_server.known_hosts}\n")
    code, result, log = cli("images", "--store", ssh_server.url("images"), "--credentials",
                            creds)
    assert code == UsageError.code, log
    assert "missing_key cannot be read" in result["error"]["title"]


def test_server_gone_mid_restore_then_a_delta_restore_completes(
        ssh_server: SshServer, small_disk: DemoDisk, tmp_path: Path) -> None:
    creds = credentials(ssh_server, tmp_path, key=True)
    url = ssh_server.url("images")
    code, _, log = cli("capture", small_disk.path, "--store", url, "--credentials", creds,
                       "--name", "pc")
    assert code == 0, log
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(small_disk.path.stat().st_size)
    argv = ["restore", "--store", url, "--credentials", str(creds), "pc", str(target),
            "--yes", "--json"]
    # Once the restore has written something.
    code, result, output = job_losing_its_server(ssh_server, argv,
                                                 lambda: target.stat().st_blocks > 0)
    assert code == NetworkError.code, output
    assert "server 127.0.0.1 stopped answering during the restore" in result["error"]["title"]
    assert "delta restore" in result["error"]["action"]
    assert target.read_bytes() != small_disk.path.read_bytes()  # only partly restored
    ssh_server.start()
    code, _, log = cli("restore", "--store", url, "--credentials", creds, "pc", target,
                       "--yes", "--delta")
    assert code == 0, log
    assert target.read_bytes() == small_disk.path.read_bytes()
