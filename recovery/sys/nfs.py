"""mount.nfs: an image store on an NFS export, kernel NFS client; NFS 4 first, then 3.

NFS 3 is mounted `nolock` (a job's own lock files in the store do the locking; the NLM lock
service and statd would need more ports and a listening service on this PC). Its mount
service is found through the server's portmapper (port 111) unless `mount_port` names it
(`nfs://SERVER/EXPORT?mountport=N`, for a server behind a firewall that opens only the NFS
and mount ports).

Mounted `soft` with a 10 s timeout and 3 retries: a server that goes away makes the job
fail with an I/O error (which a rerun resumes: every store file is written to a temporary
name, fsynced and renamed) instead of hanging the PC for ever as a `hard` mount would.
"""

from __future__ import annotations

from pathlib import Path

from recovery.errors import NetworkError, RecoveryError, StoreError
from recovery.sys.neterrors import classify
from recovery.sys.run import run

_OPTIONS = "soft,timeo=100,retrans=3"
# NFS 4 refused by an old server: try NFS 3 (which also needs mountd and rpcbind).
_VERSION_REFUSED = ("protocol not supported", "requested nfs version", "program not registered")


def mount(server: str, export: str, mountpoint: Path, *, port: int | None,
          mount_port: int | None = None) -> str:
    """Mount server:export; returns the NFS version that worked ("4" or "3")."""
    host = f"[{server}]" if ":" in server else server
    port_option = f",port={port}" if port else ""
    # NFS 3: one try (mount.nfs retries for 2 minutes by default), no lock service; with a
    # mount port no portmapper is asked for either port.
    # proto=/mountproto=tcp: the NFS and mount services over TCP only (mount.nfs would ask
    # the mount service over UDP first, which a NAT or firewall often drops); mount.nfs
    # looks "tcp" up in /etc/protocols (Debian's netbase, in the live image for this).
    v3 = ",nolock,retry=0,proto=tcp,mountproto=tcp" + (
        f",mountport={mount_port},port={port or 2049}" if mount_port else port_option)
    refused_v4 = ""
    for version, extra in (("4", port_option), ("3", v3)):
        options = f"vers={version},{_OPTIONS}{extra}"
        result = run(["mount", "-t", "nfs", "-o", options, f"{host}:{export}",
                      str(mountpoint)], check=False, timeout=120)
        if result.returncode == 0:
            return version
        message = (result.stderr or result.stdout).decode(errors="replace")
        error = classify(message, server, port or 2049, f"NFS export {export}")
        if version == "4" and any(key in message.lower() for key in _VERSION_REFUSED):
            refused_v4 = " ".join(message.split())[-200:]
            continue
        if refused_v4 and type(error) is not StoreError:  # not just "no such folder"
            raise _neither(server, export, refused_v4, error, mount_port)
        raise error
    raise AssertionError("unreachable")


def _neither(server: str, export: str, v4: str, v3: RecoveryError,
             mount_port: int | None) -> NetworkError:
    where = (f"its mount service on port {mount_port}" if mount_port else
             "its portmapper (port 111) and mount service")
    return NetworkError(
        f"The server {server} does not offer NFS 4 for {export} ({v4}), and NFS 3 failed "
        f"too: {v3.title}",
        f"Turn on NFS 4 on the server, or NFS 3 with {where} reachable from this PC (if "
        "mountd listens on a fixed port and port 111 is blocked, add ?mountport=PORT to "
        "the URL). " + v3.action)
