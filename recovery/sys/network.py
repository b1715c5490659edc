"""The PC's wired network, as `ip` sees it, and the name servers DHCP gave it.

The live image brings every Ethernet port with a cable up by DHCP (systemd-networkd, see
image-build/rootfs/etc/systemd/network/); nothing waits for it at boot. systemd-resolved is
not in the image (it would listen on 127.0.0.53), so the name servers of the DHCP leases
are written to /etc/resolv.conf here, before a store URL is mounted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from recovery.sys.run import run

LEASES = Path("/run/systemd/netif/leases")
RESOLV_CONF = Path("/etc/resolv.conf")


@dataclass(frozen=True)
class Link:
    name: str
    mac: str
    carrier: bool  # a cable is plugged in and the link is up
    addresses: tuple[str, ...]  # "192.168.1.20/24"

    def describe(self) -> str:
        if not self.carrier:
            return f"{self.name}: no cable"
        return f"{self.name}: {', '.join(self.addresses) or 'waiting for an address (DHCP)'}"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "mac": self.mac, "carrier": self.carrier,
                "addresses": list(self.addresses)}


def wired_links() -> list[Link]:
    """Every Ethernet port (PCI or USB), with or without a cable."""
    document = json.loads(run(["ip", "-j", "addr", "show"]).stdout or b"[]")
    links = []
    for item in document:
        # Real ports have a device behind them; bridges, veth and ifb pairs do not.
        if item.get("link_type") != "ether" or not Path(
                f"/sys/class/net/{item['ifname']}/device").exists():
            continue
        addresses = tuple(f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", [])
                          if a.get("family") == "inet")
        flags = item.get("flags", [])
        links.append(Link(item["ifname"], item.get("address", ""),
                          "LOWER_UP" in flags and "NO-CARRIER" not in flags, addresses))
    return links


def lease_name_servers(leases: Path = LEASES) -> list[str]:
    """DNS servers of the current DHCP leases (systemd-networkd's lease files)."""
    found: list[str] = []
    for lease in sorted(leases.glob("*")) if leases.is_dir() else []:
        for line in lease.read_text(errors="replace").splitlines():
            if line.startswith("DNS="):
                found += [s for s in line[4:].split() if s not in found]
    return found


def update_resolv_conf(leases: Path = LEASES, target: Path = RESOLV_CONF) -> list[str]:
    """Point name lookups at the DHCP name servers; leaves a hand-written file alone when
    no lease has any. Returns the servers written."""
    servers = lease_name_servers(leases)
    if servers:
        text = "# written by recovery from the DHCP leases\n" + "".join(
            f"nameserver {server}\n" for server in servers[:3])
        if not target.is_file() or target.read_text(errors="replace") != text:
            target.unlink(missing_ok=True)  # may be a dangling symlink to resolved's file
            target.write_text(text)
    return servers
