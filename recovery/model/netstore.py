"""Network image stores: the URL a technician types and the secrets that go with it.

    smb://[DOMAIN;]USER@SERVER[:PORT]/SHARE/PATH[?vers=2.1]
    nfs://SERVER[:PORT]/EXPORT/PATH[?mountport=N]   (NFS 4, else 3; mountport: NFS 3's
                                                    mount service, when no portmapper answers)
    ssh://USER@SERVER[:PORT]/PATH

A password is never part of a URL (it would end up in logs, shell history and process
lists): it is typed at a prompt or read from a credentials file. `Secret` keeps it out of
every repr, str and f-string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from recovery.errors import UsageError

Scheme = Literal["smb", "nfs", "ssh"]
SCHEMES: tuple[Scheme, ...] = ("smb", "nfs", "ssh")
DEFAULT_PORTS = {"smb": 445, "nfs": 2049, "ssh": 22}
SMB_VERSIONS = ("3", "3.0", "3.02", "3.1.1", "2.1", "2.0", "1.0")
_HOST = re.compile(r"^[A-Za-z0-9._-]+$|^[0-9a-fA-F:]+$")
_EXAMPLES = ("smb://OFFICE;tech@nas/images/store, nfs://nas/export/images, "
             "ssh://tech@nas:22/srv/images")


class Secret:
    """A password: shown as '***' everywhere; `reveal()` only where it is handed over."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class StoreURL:
    scheme: Scheme
    server: str
    path: tuple[str, ...]  # SMB: the share first
    user: str = ""
    domain: str = ""
    port: int | None = None
    smb_version: str = ""  # forced `vers=`; "" tries SMB 3, then 2.1
    mount_port: int | None = None  # NFS 3's mountd port, when the portmapper is not reachable

    @property
    def port_or_default(self) -> int:
        return self.port or DEFAULT_PORTS[self.scheme]

    def display(self) -> str:
        """The URL as typed (it never holds a secret), for messages and --json."""
        user = f"{self.domain};{self.user}@" if self.domain else (
            f"{self.user}@" if self.user else "")
        host = f"[{self.server}]" if ":" in self.server else self.server
        port = f":{self.port}" if self.port else ""
        query = f"?vers={self.smb_version}" if self.smb_version else (
            f"?mountport={self.mount_port}" if self.mount_port else "")
        return f"{self.scheme}://{user}{host}{port}/{'/'.join(self.path)}{query}"

    def mount_name(self) -> str:
        """A file-name-safe tag for the mount point under /run/recovery/net."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.scheme}-{self.server}")


@dataclass(frozen=True)
class Credentials:
    """What logs in to a network store; from a prompt or a credentials file."""

    username: str = ""
    password: Secret | None = None
    domain: str = ""
    identity_file: Path | None = None  # SSH private key
    known_hosts: Path | None = None  # SSH host keys to trust


def is_url(value: str) -> bool:
    return "://" in value


def parse_url(value: str) -> StoreURL:
    """A store URL; UsageError naming what is wrong and showing the forms accepted."""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError as exc:
        raise _bad(value, "it is not a valid URL") from exc
    if password is not None:
        raise UsageError(f"The store URL {_masked(value)} holds a password.",
                         "Leave it out: it would show in logs and process lists. Type it when "
                         "asked, or put it in a credentials file.")
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _bad(value, f"'{parts.scheme}' is not smb, nfs or ssh")
    server = _server(parts, value)
    path = tuple(unquote(piece) for piece in parts.path.split("/") if piece)
    if not path:
        raise _bad(value, "it names no share or folder on the server")
    if any(piece in (".", "..") for piece in path):
        raise _bad(value, "'.' and '..' are not allowed in the path")
    domain, user = _user(parts)
    if scheme == "smb" and not user:
        raise _bad(value, "an SMB store needs a user (smb://USER@SERVER/SHARE/PATH)")
    if scheme == "ssh" and not user:
        raise _bad(value, "an SSH store needs a user (ssh://USER@SERVER/PATH)")
    if scheme != "smb" and domain:
        raise _bad(value, "a domain is for smb:// only")
    if scheme == "nfs":
        return StoreURL(scheme, server, path, user, domain, _port(parts, value),
                        mount_port=_mount_port(parts.query, value))
    if scheme != "smb" and parts.query:
        raise _bad(value, "?vers= is for smb:// only (and ?mountport= for nfs://)")
    return StoreURL(scheme, server, path, user, domain, _port(parts, value),
                    _smb_version(parts.query, value))


def _server(parts: SplitResult, value: str) -> str:
    server = parts.hostname or ""
    if not server or not _HOST.match(server):
        raise _bad(value, "it names no server (or the server name has odd characters)")
    return server


def _user(parts: SplitResult) -> tuple[str, str]:
    user = unquote(parts.username or "")
    if ";" in user:
        domain, _, user = user.partition(";")
        return domain, user
    return "", user


def _port(parts: SplitResult, value: str) -> int | None:
    try:
        port = parts.port
    except ValueError as exc:
        raise _bad(value, "its port is not a number from 1 to 65535") from exc
    if port == 0:
        raise _bad(value, "its port is not a number from 1 to 65535")
    return port


def _smb_version(query: str, value: str) -> str:
    if not query:
        return ""
    options = parse_qs(query, keep_blank_values=True)
    versions = options.pop("vers", [])
    if options or len(versions) != 1 or versions[0] not in SMB_VERSIONS:
        raise _bad(value, f"the only option is ?vers= with one of {', '.join(SMB_VERSIONS)}")
    return versions[0]


def _mount_port(query: str, value: str) -> int | None:
    if not query:
        return None
    options = parse_qs(query, keep_blank_values=True)
    ports = options.pop("mountport", [])
    if options or len(ports) != 1 or not ports[0].isdigit() or not 0 < int(ports[0]) < 65536:
        raise _bad(value, "the only option of nfs:// is ?mountport= with a port number (NFS "
                          "3's mount service)")
    return int(ports[0])


def _masked(value: str) -> str:
    """The URL with any password replaced by ***: never echo a secret."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", value)


def _bad(value: str, why: str) -> UsageError:
    return UsageError(f"The store URL {_masked(value)} cannot be used: {why}.",
                      f"Write it like {_EXAMPLES}.")


def read_credentials(path: Path) -> Credentials:
    """A credentials file: `key=value` lines (username, password, domain, identity_file,
    known_hosts), as mount.cifs reads them; '#' starts a comment."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"The credentials file {path} cannot be read: {exc.strerror}.",
                         "Check the path (and that the stick holding it is plugged in).") from exc
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = {"user": "username", "pass": "password", "key": "identity_file",
               "workgroup": "domain"}.get(key.strip().lower(), key.strip().lower())
        if not sep or key not in ("username", "password", "domain", "identity_file",
                                  "known_hosts"):
            # Never quote the line: it may be a password.
            raise UsageError(f"Line {number} of the credentials file {path} is not one of "
                             "username=, password=, domain=, identity_file=, known_hosts=.",
                             "Fix that line: each one is key=value with one of those keys.")
        values[key] = value.strip()

    def as_path(key: str) -> Path | None:
        return (path.parent / values[key]) if values.get(key) else None

    password = values.get("password")
    return Credentials(username=values.get("username", ""),
                       password=Secret(password) if password is not None else None,
                       domain=values.get("domain", ""), identity_file=as_path("identity_file"),
                       known_hosts=as_path("known_hosts"))
