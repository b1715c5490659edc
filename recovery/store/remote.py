"""Network image stores: mount the share a store URL names for one job, unmount after.

    /run/recovery/net/<scheme>-<server>-<pid>-<n>/    the mount (RAM-backed /run)

SMB mounts the share and the store is the URL's path inside it; NFS and SSH mount the
URL's whole path, or the longest part of it that exists (so a first capture can create the
store folder, as it does on a USB drive). Every failure names the server and says what to
do (recovery.sys.neterrors); a job that fails because the server stopped answering says
so and how to resume. Secrets only pass through recovery.sys.cifs and .sshfs.

While the job runs, a watch thread asks the mount every WATCH_SECONDS whether it answers;
after GONE_SECONDS without an answer it forces the calls stuck on the share to end
(`umount -f`: cifs, NFS and FUSE fail their pending requests), so a job on a server that
went away ends and says so instead of hanging in the kernel (a soft mount bounds most calls,
not all: the SMB server-gone test once hung a capture for 25 minutes). The watch keeps a
handle open on the mount, so the forced unmount cannot detach it: the job's paths never
fall through to the empty folder beneath and fill the PC's RAM.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from recovery.errors import LoginError, NetworkError, RecoveryError, StoreError, UsageError
from recovery.model.netstore import Credentials, StoreURL
from recovery.sys import cifs, network, nfs, sshfs, sshkeys
from recovery.sys.run import run

log = logging.getLogger(__name__)

WATCH_SECONDS = 15.0
GONE_SECONDS = 120.0  # far above a slow answer under load; cifs itself gives up after 30 s
UNMOUNT_WAIT_SECONDS = 30.0

NET_ROOT = Path("/run/recovery/net")
# (server, "ED25519 SHA256:...") -> does the technician trust this host key?
HostKeyPrompt = Callable[[str, str], bool]
_serial = itertools.count(1)
_RESUME = {"capture": "Run the same capture again when the server is back: it resumes, and "
                      "nothing half-written is listed as an image.",
           "restore": "The target is only partly restored. When the server is back, a delta "
                      "restore of the same image writes only what is missing."}


@dataclass(frozen=True)
class MountedStore:
    url: StoreURL
    mountpoint: Path
    path: Path  # the store folder in the mount
    detail: str  # "SMB 3", "NFS 4", "SFTP"


@contextlib.contextmanager
def mounted_store(url: StoreURL, credentials: Credentials, *, job: str = "job",
                  ask_host_key: HostKeyPrompt | None = None, net_root: Path = NET_ROOT
                  ) -> Iterator[MountedStore]:
    network.update_resolv_conf()  # the DHCP lease's name servers, for a server's name
    mountpoint = net_root / f"{url.mount_name()}-{os.getpid()}-{next(_serial)}"
    mountpoint.mkdir(parents=True, exist_ok=True)
    try:
        with _private_key(credentials.identity_file) as key:
            credentials = replace(credentials, identity_file=key)
            yield from _mounted(url, credentials, mountpoint, job, ask_host_key)
    finally:
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def _mounted(url: StoreURL, credentials: Credentials, mountpoint: Path, job: str,
             ask_host_key: HostKeyPrompt | None) -> Iterator[MountedStore]:
    detail, inner = _mount(url, credentials, mountpoint, ask_host_key)
    gone = False
    try:
        with _watched(mountpoint, url.server):
            yield MountedStore(url, mountpoint, mountpoint.joinpath(*inner), detail)
    except (RecoveryError, OSError) as exc:
        if _answers(mountpoint):
            raise
        gone = True
        title = exc.title if isinstance(exc, RecoveryError) else str(exc)
        raise NetworkError(f"The server {url.server} stopped answering during the {job} "
                           f"({title}).", _RESUME.get(job, "Check the network and the "
                           "server, then run the same command again.")) from exc
    finally:
        _unmount(mountpoint, gone)


@contextlib.contextmanager
def _private_key(key: Path | None) -> Iterator[Path | None]:
    """OpenSSH ignores a private key that others can read, and a key on a FAT or exFAT stick
    always looks so (FAT has no modes: every file is 0755). sshfs gets a 0600 copy in the
    private RAM folder the SMB credentials use; it lives as long as the mount (a reconnect
    reads it again)."""
    if key is None:
        yield None
        return
    try:
        data = key.read_bytes()
    except OSError as exc:
        raise UsageError(f"The SSH key {key} cannot be read: {exc.strerror}.",
                         "Check the identity_file= line of the credentials file (a path "
                         "relative to that file) and that the stick holding it is "
                         "plugged in.") from exc
    cifs.SECRETS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    copy = cifs.SECRETS_DIR / f"ssh-key-{os.getpid()}-{next(_serial)}"
    with os.fdopen(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _mount(url: StoreURL, credentials: Credentials, mountpoint: Path,
           ask_host_key: HostKeyPrompt | None) -> tuple[str, tuple[str, ...]]:
    """Mount; returns (what was mounted, the store's path inside the mount)."""
    if url.scheme == "smb":
        version = cifs.mount(url.server, url.path[0], mountpoint, port=url.port_or_default,
                             username=url.user or credentials.username,
                             password=credentials.password,
                             domain=url.domain or credentials.domain, version=url.smb_version)
        return f"SMB {version}", url.path[1:]
    if url.scheme == "nfs":
        def mount_nfs(remote: str) -> str:
            return "NFS " + nfs.mount(url.server, remote, mountpoint, port=url.port,
                                      mount_port=url.mount_port)
        return _mount_longest(url, mount_nfs)
    known_hosts = credentials.known_hosts or Path.home() / ".ssh" / "known_hosts"
    _check_host_key(url, known_hosts, ask_host_key)

    def mount_ssh(remote: str) -> str:
        sshfs.mount(url.user or credentials.username, url.server, url.port_or_default, remote,
                    mountpoint, known_hosts=known_hosts, password=credentials.password,
                    identity_file=credentials.identity_file)
        return "SFTP"
    return _mount_longest(url, mount_ssh)


def _mount_longest(url: StoreURL, mount: Callable[[str], str]) -> tuple[str, tuple[str, ...]]:
    """Mount the URL's path, else its longest existing parent (the store may not exist
    yet: a first capture creates it)."""
    for keep in range(len(url.path), 0, -1):
        try:
            return mount("/" + "/".join(url.path[:keep])), url.path[keep:]
        except StoreError as exc:
            if type(exc) is not StoreError or keep == 1:  # only "no such folder" goes on
                raise
    raise AssertionError("unreachable")


def _check_host_key(url: StoreURL, known_hosts: Path, ask: HostKeyPrompt | None) -> None:
    port = url.port_or_default
    known = sshkeys.known_keys(url.server, port, known_hosts)
    key, offered = sshkeys.scan(url.server, port)
    if known & offered:
        return
    if known:
        # ssh's own message would not reach us through sshfs: compare here.
        raise LoginError(
            f"The SSH host key of {url.server} ({key.fingerprint}) is not the one in "
            f"{known_hosts}.",
            "If the server was reinstalled, remove its old line (ssh-keygen -R "
            f"'{sshkeys.host_pattern(url.server, port)}' -f {known_hosts}) and connect "
            "again to check the new key; otherwise someone may be impersonating the server: "
            "stop.")
    if ask is not None and ask(url.server, key.fingerprint):
        sshkeys.trust(key, known_hosts)
        return
    pattern = sshkeys.host_pattern(url.server, port)
    raise LoginError(
        f"The SSH host key of {url.server} is not known ({key.fingerprint}).",
        "Compare it with the server's own (on the server: ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub); if it matches, add it to "
        f"{known_hosts} (ssh-keyscan -p {port} {url.server} >> {known_hosts}), or name a "
        f"known_hosts file in the credentials file. Host: {pattern}.")


def _answers(mountpoint: Path, timeout: float = 20.0) -> bool:
    """Does the mount still answer? A gone server fails statvfs (ENOTCONN, EIO) or hangs."""
    answered = threading.Event()

    def probe() -> None:
        with contextlib.suppress(OSError):
            if not os.path.ismount(mountpoint):  # a FUSE daemon that exited unmounts
                return
            os.statvfs(mountpoint)
            os.listdir(mountpoint)
            answered.set()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return answered.is_set()


@contextlib.contextmanager
def _watched(mountpoint: Path, server: str) -> Iterator[None]:
    """Watch the mount while the job runs (module docstring); the open handle keeps it
    busy until the job is over."""
    holder = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    stop = threading.Event()
    watch = threading.Thread(target=_watch, args=(mountpoint, server, stop), daemon=True,
                             name=f"share-watch-{server}")
    watch.start()
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            os.close(holder)


def _watch(mountpoint: Path, server: str, stop: threading.Event) -> None:
    answered = time.monotonic()
    while not stop.wait(WATCH_SECONDS):
        if _answers(mountpoint, timeout=WATCH_SECONDS):
            answered = time.monotonic()
        elif time.monotonic() - answered >= GONE_SECONDS and not stop.is_set():
            log.warning("The server %s has not answered for %.0f s: ending the job's "
                        "calls to it.", server, time.monotonic() - answered)
            # Runs in this daemon thread: if even this hangs, the job is not held up.
            run(["umount", "-f", str(mountpoint)], check=False, timeout=None)
            return


def _unmount(mountpoint: Path, gone: bool = False) -> None:
    """Unmount after the job. A gone server's mount is detached at once (`umount -l`) in a
    thread of its own: a plain unmount would wait for the server, maybe for ever."""
    if gone:
        detach = threading.Thread(target=run, args=(["umount", "-l", str(mountpoint)],),
                                  kwargs={"check": False, "timeout": None}, daemon=True)
        detach.start()
        detach.join(UNMOUNT_WAIT_SECONDS)
        return
    if run(["umount", str(mountpoint)], check=False, timeout=60).returncode != 0:
        # Busy or the server is gone: detach now, the kernel finishes when it can.
        run(["umount", "-l", str(mountpoint)], check=False, timeout=60)
