"""mount.cifs: an image store on an SMB share (Windows, Samba, any NAS), kernel cifs client.

SMB 3 is tried first, then 2.1 (older NAS firmware), unless a version is forced. The user,
domain and password go to mount.cifs in a `credentials=` file created with mode 0600 in a
private folder of the RAM-backed /run and deleted as soon as the mount returns: they never
appear on a command line (readable by anyone in /proc), in a log or on a disk.

Mounted `soft` with `echo_interval=10`: when the server goes away mid-job, the kernel
notices within about three echo intervals (a cut connection at once) and, on a soft mount,
fails the job's reads and writes with an I/O error after one reconnect attempt, so the job
ends with the server named. A `hard` mount would retry for ever and hang the PC (and the
unmount) until the server returns. A failed capture resumes when run again (chunks are
written under temporary names and renamed; the image is listed only once complete).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from recovery.errors import NetworkError, RecoveryError
from recovery.model.netstore import Secret
from recovery.sys.neterrors import classify
from recovery.sys.run import run

SECRETS_DIR = Path("/run/recovery/secrets")
VERSIONS = ("3", "2.1")
# Only these mean "the server does not speak this dialect"; anything else is final.
_DIALECT_REFUSED = ("error(95)", "error(22)", "error(112)", "operation not supported")


def mount(server: str, share: str, mountpoint: Path, *, port: int, username: str,
          password: Secret | None, domain: str = "", version: str = "") -> str:
    """Mount //server/share; returns the SMB version that worked."""
    unc = f"//{server}/{share}"
    refused = ""  # SMB 3's refusal, when 2.1 is tried next
    for vers in (version,) if version else VERSIONS:
        with _credentials_file(username, password, domain) as credentials:
            options = (f"credentials={credentials},vers={vers},port={port},uid=0,gid=0,"
                       "file_mode=0644,dir_mode=0755,noperm,soft,echo_interval=10")
            result = run(["mount.cifs", unc, str(mountpoint), "-o", options], check=False)
        if result.returncode == 0:
            return vers
        message = (result.stderr or result.stdout).decode(errors="replace")
        error = classify(message, server, port, f"SMB share {share}")
        if refused:  # SMB 2.1 failed too; a wrong password or share is said as such
            raise _neither(server, share, refused, error) if isinstance(
                error, NetworkError) else error
        if not any(key in message.lower() for key in _DIALECT_REFUSED):
            raise error
        said = " ".join(message.split())[-200:]  # mount.cifs's words, on one line
        if version:
            raise _forced_refused(server, share, version, said)
        refused = said
    raise AssertionError("unreachable: the last version's failure is raised above")


def _neither(server: str, share: str, smb3: str, smb21: RecoveryError) -> NetworkError:
    return NetworkError(
        f"The server {server} did not accept SMB 3 for share {share} ({smb3}), and SMB 2.1 "
        f"failed too: {smb21.title}",
        "Turn on SMB 2.1 or 3 on the server (a NAS calls it the minimum or maximum SMB "
        "protocol), or add ?vers=2.0 (or ?vers=1.0 for a very old NAS) to the URL to use "
        "the version it speaks. " + smb21.action)


def _forced_refused(server: str, share: str, version: str, said: str) -> NetworkError:
    return NetworkError(
        f"The server {server} did not accept SMB {version} (asked by ?vers={version} in the "
        f"URL) for share {share} ({said}).",
        "Remove ?vers= from the URL (SMB 3 is tried, then 2.1), or give the version the "
        "server speaks (its SMB settings say which).")


@contextlib.contextmanager
def _credentials_file(username: str, password: Secret | None, domain: str
                      ) -> Iterator[Path]:
    SECRETS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(SECRETS_DIR, 0o700)
    path = SECRETS_DIR / f"cifs-{secrets.token_hex(8)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        lines = [f"username={username}", f"password={password.reveal() if password else ''}"]
        if domain:
            lines.append(f"domain={domain}")
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.close(fd)
        fd = -1
        yield path
    finally:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
