"""mount.nfs: an image store on an NFS export, kernel NFS client; NFS 4 first, then 3.

Mounted `soft` with a 10 s timeout and 3 retries: a server that goes away makes the job
fail with an I/O error (which a rerun resumes: every store file is written to a temporary
name, fsynced and renamed) instead of hanging the PC for ever as a `hard` mount would.
"""

from __future__ import annotations

from pathlib import Path

from recovery.errors import RecoveryError
from recovery.sys.neterrors import classify
from recovery.sys.run import run

_OPTIONS = "soft,timeo=100,retrans=3"
# NFS 4 refused by an old server: try NFS 3 (which also needs mountd and rpcbind).
_VERSION_REFUSED = ("protocol not supported", "requested nfs version", "program not registered")


def mount(server: str, export: str, mountpoint: Path, *, port: int | None) -> str:
    """Mount server:export; returns the NFS version that worked ("4" or "3")."""
    host = f"[{server}]" if ":" in server else server
    port_option = f",port={port}" if port else ""
    last: RecoveryError | None = None
    for version, extra in (("4", ""), ("3", ",nolock")):
        options = f"vers={version},{_OPTIONS}{port_option}{extra}"
        result = run(["mount", "-t", "nfs", "-o", options, f"{host}:{export}",
                      str(mountpoint)], check=False, timeout=120)
        if result.returncode == 0:
            return version
        message = (result.stderr or result.stdout).decode(errors="replace")
        last = classify(message, server, port or 2049, f"NFS export {export}")
        if not any(key in message.lower() for key in _VERSION_REFUSED):
            break
    assert last is not None
    raise last
