"""sshfs: an image store over SSH (SFTP), mounted with FUSE.

The password, when there is one, goes to sshfs on stdin (`password_stdin`), never on the
command line; host keys are checked against a known_hosts file (StrictHostKeyChecking=yes).
A server that stops answering is noticed within 45 s (ServerAliveInterval 15, 3 misses):
the job then fails with an I/O error instead of hanging.
"""

from __future__ import annotations

import socket
from pathlib import Path

from recovery.errors import LoginError
from recovery.model.netstore import Secret
from recovery.sys.neterrors import classify
from recovery.sys.run import run_leaving_daemon


def mount(user: str, server: str, port: int, remote: str, mountpoint: Path, *,
          known_hosts: Path, password: Secret | None = None,
          identity_file: Path | None = None) -> None:
    host = f"[{server}]" if ":" in server else server
    # reconnect: without it sshfs exits and unmounts itself when the connection drops,
    # and the job would go on writing into the empty mount-point folder.
    options = ["reconnect", "StrictHostKeyChecking=yes", f"UserKnownHostsFile={known_hosts}",
               "ServerAliveInterval=15", "ServerAliveCountMax=3", "ConnectTimeout=20"]
    if password:  # sshfs can feed a password to one connection only
        options += ["password_stdin", "PreferredAuthentications=password",
                    "NumberOfPasswordPrompts=1", "PubkeyAuthentication=no"]
    else:
        options += ["BatchMode=yes", "max_conns=4"]
    if identity_file is not None:
        options += [f"IdentityFile={identity_file}", "IdentitiesOnly=yes"]
    argv = ["sshfs", f"{user}@{host}:{remote}", str(mountpoint), "-p", str(port)]
    for option in options:
        argv += ["-o", option]
    result = run_leaving_daemon(argv, input_bytes=(password.reveal() + "\n").encode()
                                if password else None)
    if result.returncode != 0:
        message = result.stdout.decode(errors="replace")
        if "host key verification failed" in message.lower():
            raise LoginError(
                f"The SSH host key of {server} is not the one in {known_hosts}.",
                "If the server was reinstalled, remove its old line from that file "
                f"(ssh-keygen -R {host} -f {known_hosts}) and connect again to check the "
                "new key; otherwise someone may be impersonating the server: stop.")
        if "connection reset" in message.lower() and _answers_ssh(server, port):
            # sshfs says only this when ssh gave up; the server answering means the login
            # was refused (ssh's own "Permission denied" does not reach sshfs's output).
            message = "permission denied (login refused)"
        raise classify(message, server, port, f"SSH folder {remote}")


def _answers_ssh(server: str, port: int) -> bool:
    try:
        with socket.create_connection((server, port), timeout=10) as connection:
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False
