"""Throwaway file servers on 127.0.0.1 for the network-store tests: OpenSSH's sshd, Samba's
smbd, NFS-Ganesha.

Each server gets its own config, host key and port in a temp folder; it serves one test
user (created once, its password set anew by each session) and dies with the test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

TEST_USER = "recoverytest"


class _Stoppable(Protocol):
    def stop(self) -> None: ...


Server = TypeVar("Server", bound=_Stoppable)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def spawn(argv: list[str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """A test server in its own session (stdin from /dev/null: smbd never listens with a
    pipe there), its output appended to `log`; returned once it listens on `port`."""
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   start_new_session=True)
    wait_for_port(port)
    return process


def ensure_test_user(password: str | None) -> tuple[int, int]:
    """The local account the SSH tests log in as (its password set when given); (uid, gid)."""
    if subprocess.run(["id", "-u", TEST_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                        TEST_USER], check=True)
    if password is not None:
        subprocess.run(["chpasswd"], input=f"{TEST_USER}:{password}", text=True, check=True)
    uid = int(subprocess.run(["id", "-u", TEST_USER], capture_output=True, text=True,
                             check=True).stdout)
    gid = int(subprocess.run(["id", "-g", TEST_USER], capture_output=True, text=True,
                             check=True).stdout)
    return uid, gid


def reachable_by_test_user(folder: Path) -> None:
    """The servers act as the test user on the share: it must get through every parent."""
    for parent in [folder, *folder.parents]:
        if parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)


@dataclass
class SshServer:
    folder: Path
    port: int
    password: str
    root: Path  # a folder the test user owns: stores go below it
    client_key: Path  # private key whose public half is authorized
    known_hosts: Path  # holds this server's host key
    process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"ssh://{TEST_USER}@127.0.0.1:{self.port}{self.root}/{path}"

    def host_key_fingerprint(self) -> str:
        """The fingerprint ssh shows for this server's host key (SHA256:...)."""
        listing = subprocess.run(["ssh-keygen", "-lf", str(self.folder / "host_key.pub")],
                                 capture_output=True, text=True, check=True).stdout
        return listing.split()[1]

    def start(self) -> None:
        self.process = spawn(["/usr/sbin/sshd", "-D", "-e", "-f",
                              str(self.folder / "sshd_config")],
                             self.folder / "sshd.log", self.port)

    def stop(self) -> None:
        """Kill the server and every session it serves: the server is gone."""
        kill_tree(self.process)
        self.process = None


def kill_tree(process: subprocess.Popen[bytes] | None) -> None:
    """Kill a server and all it started (sshd's sessions are their own process sessions,
    so a process-group kill would miss them)."""
    if process is None:
        return
    for pid in [*descendants(process.pid), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def served(server: Server) -> Iterator[Server]:
    """Stop the server after the test, whatever happened."""
    try:
        yield server
    finally:
        server.stop()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def make_ssh_server(folder: Path) -> SshServer:
    folder.mkdir(parents=True, exist_ok=True)
    password = "pw-" + secrets.token_urlsafe(12)
    uid, gid = ensure_test_user(password)
    os.makedirs("/run/sshd", exist_ok=True)
    host_key = folder / "host_key"
    client_key = folder / "client_key"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
    keys = folder / "authorized_keys"
    shutil.copy(f"{client_key}.pub", keys)
    port = free_port()
    (folder / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {folder}/sshd.pid
AuthorizedKeysFile {keys}
StrictModes no
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers {TEST_USER}
Subsystem sftp internal-sftp
""")
    root = folder / "share"
    root.mkdir()
    os.chown(root, uid, gid)
    reachable_by_test_user(folder)
    known_hosts = folder / "known_hosts"
    public = (Path(f"{host_key}.pub").read_text().split())
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    server = SshServer(folder, port, password, root, client_key, known_hosts)
    server.start()
    return server


@dataclass
class SambaServer:
    """smbd on 127.0.0.1:port with one share, `images`, writable by the test user."""

    folder: Path
    port: int
    password: str
    share: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = spawn(["smbd", "--foreground", "--no-process-group",
                              f"--configfile={self.folder / 'smb.conf'}"],
                             self.folder / "smbd.out", self.port)

    def stop(self) -> None:
        kill_tree(self.process)
        self.process = None


def make_samba_server(folder: Path, password: str | None = None, share: Path | None = None,
                      protocols: tuple[str, str] = ("SMB2_10", "SMB3")) -> SambaServer:
    """`share`: the folder to share (default: a new one in `folder`); `password`: the test
    user's (pass the SSH server's when both serve one folder); `protocols`: the lowest and
    highest SMB dialect smbd speaks (an old NAS: ("SMB2_10", "SMB2_10"))."""
    folder.mkdir(parents=True, exist_ok=True)
    password = password or "pw-" + secrets.token_urlsafe(12)
    uid, gid = ensure_test_user(password)
    if share is None:
        share = folder / "share"
        share.mkdir()
        os.chown(share, uid, gid)
    reachable_by_test_user(folder)
    for sub in ("private", "lock", "state", "cache", "pid", "log"):
        (folder / sub).mkdir()
    port = free_port()
    config = folder / "smb.conf"
    config.write_text(f"""\
[global]
server role = standalone server
smb ports = {port}
interfaces = 127.0.0.1
bind interfaces only = yes
disable netbios = yes
passdb backend = tdbsam:{folder}/private/passdb.tdb
private dir = {folder}/private
lock directory = {folder}/lock
state directory = {folder}/state
cache directory = {folder}/cache
pid directory = {folder}/pid
ncalrpc dir = {folder}/state/ncalrpc
log file = {folder}/log/log.%m
load printers = no
printing = bsd
printcap name = /dev/null
disable spoolss = yes
map to guest = never
server min protocol = {protocols[0]}
server max protocol = {protocols[1]}

[images]
path = {share}
read only = no
valid users = {TEST_USER}
""")
    subprocess.run(["pdbedit", f"--configfile={config}", "-a", "-t", "-u", TEST_USER],
                   input=f"{password}\n{password}\n", text=True, check=True,
                   capture_output=True)
    server = SambaServer(folder, port, password, share)
    server.start()
    return server


@dataclass
class GaneshaServer:
    """NFS-Ganesha on 127.0.0.1:port. NFS 4 (the default): one port, no rpcbind, no mountd,
    no lock manager. NFS 3 only (`version=3`): also its mount service on `mount_port`; it
    must register both with an rpcbind, so it runs in its own mount namespace (a private
    /run for rpcbind's socket) beside an rpcbind in an empty network namespace: nothing
    listens on the host but Ganesha's two ports on 127.0.0.1, and nothing is registered
    with the host's own rpcbind. One export `/images` whose files all belong to the test
    user (so the SSH server can serve the same folder)."""

    folder: Path
    port: int
    share: Path
    mount_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ganesha = ["ganesha.nfsd", "-F", "-f", str(self.folder / "ganesha.conf"),
                   "-L", str(self.folder / "ganesha.log"),
                   "-p", str(self.folder / "ganesha.pid")]
        if self.mount_port:
            script = ("mount -t tmpfs tmpfs /run && mkdir /run/rpcbind && "
                      "{ unshare --net rpcbind -f -w & } && "
                      "for i in $(seq 100); do [ -S /run/rpcbind.sock ] && break; "
                      'sleep 0.1; done && exec "$@"')
            ganesha = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                       "ganesha-v3", *ganesha]
        self.process = spawn(ganesha, self.folder / "ganesha.out", self.port)
        if self.mount_port:
            wait_for_port(self.mount_port)

    def stop(self) -> None:
        kill_tree(self.process)
        self.process = None


def make_ganesha_server(folder: Path, share: Path | None = None,
                        version: int = 4) -> GaneshaServer:
    """`share`: the folder to export (default: a new one in `folder`); `version`: 4, or 3
    (NFS 3 only: a client asking for NFS 4 is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid, gid = ensure_test_user(None)
    if share is None:
        share = folder / "share"
        share.mkdir()
        os.chown(share, uid, gid)
        reachable_by_test_user(folder)
    (folder / "recovery").mkdir()
    port = free_port()
    mount_port = free_port() if version == 3 else None
    mount = f"MNT_Port = {mount_port};\n    Mount_Path_Pseudo = true;" if mount_port else ""
    # Every client id is squashed to the test user: what the guest's root writes belongs to
    # the test user on the host. Graceless: a fresh server takes writes at once.
    (folder / "ganesha.conf").write_text(f"""\
NFS_CORE_PARAM {{
    Protocols = {version};
    NFS_Port = {port};
    {mount}
    Bind_addr = 127.0.0.1;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}}
NFSv4 {{
    Graceless = true;
    RecoveryRoot = {folder}/recovery;
    Only_Numeric_Owners = true;
}}
EXPORT {{
    Export_Id = 1;
    Path = {share};
    Pseudo = /images;
    Access_Type = RW;
    Squash = All_Squash;
    Anonymous_Uid = {uid};
    Anonymous_Gid = {gid};
    SecType = sys;
    Protocols = {version};
    Transports = TCP;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; }}
""")
    server = GaneshaServer(folder, port, share, mount_port)
    server.start()
    return server
