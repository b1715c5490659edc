"""A job on a share whose server stops answering (a real sshd on 127.0.0.1): the job ends
and names the server in bounded time. The SMB server-gone e2e test once hung a capture for
25 minutes, its store lock's refresh thread dying with a traceback on the console."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from recovery.errors import NetworkError
from recovery.model.netstore import Credentials, parse_url
from recovery.store import locks, remote
from tests.netstore.servers import SshServer, descendants


def key_login(server: SshServer) -> Credentials:
    return Credentials(identity_file=server.client_key, known_hosts=server.known_hosts)


def test_the_lock_refresh_survives_a_server_that_went_away(
        ssh_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = parse_url(ssh_server.url("images"))
    credentials = key_login(ssh_server)
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    with remote.mounted_store(url, credentials, job="capture",
                              net_root=tmp_path / "net") as mounted:
        mounted.path.mkdir(parents=True, exist_ok=True)  # as the test user, on the share
        lock = locks.acquire(mounted.path, "capture", exclusive=False, image="pc",
                             refresh_seconds=0.2)
        assert lock.path.is_file()
        ssh_server.stop()
        time.sleep(3)  # several refreshes against the gone server
        assert lock._thread is not None and lock._thread.is_alive()
        started = time.monotonic()
        lock.release()
        released = time.monotonic() - started
    assert crashed == []
    assert released < locks.RELEASE_WAIT_SECONDS + 5


def test_a_call_stuck_on_a_silent_server_is_ended_and_the_server_named(
        ssh_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stays connected but never answers again (sshd and its sessions stopped
    with SIGSTOP): a write blocks in the kernel until the share's watch forces the calls
    on it to end; the job then fails naming the server. Without the watch it blocks until
    ssh gives up (45 s) and sshfs reconnects, or, on cifs, sometimes for ever."""
    monkeypatch.setattr(remote, "WATCH_SECONDS", 1.0)
    monkeypatch.setattr(remote, "GONE_SECONDS", 4.0)
    url = parse_url(ssh_server.url("images"))
    assert ssh_server.process is not None
    blocked = 0.0
    with pytest.raises(NetworkError) as raised, \
            remote.mounted_store(url, key_login(ssh_server), job="capture",
                                 net_root=tmp_path / "net") as mounted:
        mounted.path.mkdir(parents=True, exist_ok=True)
        # The listener and the session serving this mount (started by the mount).
        server_processes = [ssh_server.process.pid, *descendants(ssh_server.process.pid)]
        for pid in server_processes:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            (mounted.path / "chunk").write_bytes(b"x" * (1 << 20))
        finally:
            blocked = time.monotonic() - started
            for pid in server_processes:
                os.kill(pid, signal.SIGCONT)
    assert "The server 127.0.0.1 stopped answering during the capture" in raised.value.title
    # ended by the watch: not before GONE_SECONDS after its last answer
    assert remote.GONE_SECONDS - remote.WATCH_SECONDS <= blocked < 30, blocked
