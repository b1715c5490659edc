"""ssh-keyscan and ssh-keygen: is a server's host key known, and what is its fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recovery.sys.neterrors import classify
from recovery.sys.run import run


@dataclass(frozen=True)
class HostKey:
    line: str  # as known_hosts stores it
    fingerprint: str  # "SHA256:..." with the key type, e.g. "ED25519 SHA256:abc..."


def host_pattern(server: str, port: int) -> str:
    return server if port == 22 else f"[{server}]:{port}"


def known_keys(server: str, port: int, known_hosts: Path) -> set[str]:
    """The key blobs `known_hosts` holds for the server (hashed names included)."""
    if not known_hosts.is_file():
        return set()
    result = run(["ssh-keygen", "-F", host_pattern(server, port), "-f", str(known_hosts)],
                 check=False)
    return {fields[2] for line in result.stdout.decode(errors="replace").splitlines()
            if len(fields := line.split()) >= 3 and not line.startswith("#")}



def scan(server: str, port: int) -> tuple[HostKey, set[str]]:
    """The server's ED25519 key (else the first it offers) as known_hosts would hold it,
    and the blobs of every key it offers."""
    result = run(["ssh-keyscan", "-T", "10", "-p", str(port), server], check=False)
    lines = [line for line in result.stdout.decode(errors="replace").splitlines()
             if len(line.split()) >= 3 and not line.startswith("#")]
    if not lines:
        raise classify(result.stderr.decode(errors="replace") or "connection refused", server,
                       port, "SSH server")
    line = next((item for item in lines if " ssh-ed25519 " in item), lines[0])
    printed = run(["ssh-keygen", "-l", "-f", "-"], input_bytes=line.encode() + b"\n")
    fields = printed.stdout.decode().split()
    kind = fields[-1].strip("()") if fields else "?"
    key = HostKey(line, f"{kind} {fields[1] if len(fields) > 1 else '?'}")
    return key, {item.split()[2] for item in lines}


def trust(key: HostKey, known_hosts: Path) -> None:
    """Add the key to `known_hosts` (after the technician compared its fingerprint)."""
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(known_hosts, "a") as handle:
        handle.write(key.line.rstrip("\n") + "\n")
