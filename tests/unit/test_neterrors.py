"""A failed mount's message, as mount.cifs, mount.nfs and sshfs (ssh) print it, becomes an
error naming the server and saying what to do (issue 13's error classes). The messages are
the tools' own formats (cifs-utils mount.cifs.c, nfs-utils, OpenSSH ssh.c); the host here
has no cifs/NFS client and no other address may be contacted, so the cases that need a
missing name or an unreachable server are checked from their messages."""

from __future__ import annotations

import pytest

from recovery.errors import LoginError, NetworkError, StoreError
from recovery.sys.neterrors import classify


@pytest.mark.parametrize(("message", "kind", "says", "advice"), [
    ("mount error: could not resolve address for nas: Unknown error", NetworkError,
     "The server name nas was not found", "IP address"),
    ("mount.nfs: Failed to resolve server nas: Name or service not known", NetworkError,
     "The server name nas was not found", "IP address"),
    ("ssh: Could not resolve hostname nas: Temporary failure in name resolution\r\n"
     "read: Connection reset by peer", NetworkError, "The server name nas was not found",
     "IP address"),
    ("mount error(113): could not connect to 192.168.1.9Unable to find suitable address.",
     NetworkError, "cannot be reached", "no DHCP answer"),
    ("ssh: connect to host nas port 22: Network is unreachable", NetworkError,
     "cannot be reached", "network cable"),
    ("mount.nfs: Connection timed out", NetworkError, "cannot be reached", "switched on"),
    ("mount error(111): could not connect to 10.0.0.9", NetworkError,
     "refused the connection on port 445", "sharing service"),
    ("mount error(13): Permission denied", LoginError, "refused the login to SMB share x",
     "password"),
    ("mount error(2): No such file or directory", StoreError, "has no SMB share x",
     "share or folder name"),
    ("mount.nfs: access denied by server while mounting nas:/srv", StoreError,
     "has no SMB share x", "allowed to mount"),
    ("mount error(95): Operation not supported", NetworkError, "Mounting SMB share x from nas "
     "failed: mount error(95)", "see the log"),
])
def test_tool_messages_become_errors_that_name_the_server(
        message: str, kind: type[StoreError], says: str, advice: str) -> None:
    error = classify(message, "nas", 445, "SMB share x")
    assert type(error) is kind
    assert says in error.title and advice in error.action
