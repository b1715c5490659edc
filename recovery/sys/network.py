"""The PC's wired network, as `ip` sees it, and the name servers DHCP gave it.

The live image brings every Ethernet port with a cable up by DHCP (systemd-networkd, see
image-build/rootfs/etc/systemd/network/); nothing waits for it at boot. systemd-resolved is
not in the image (it would listen on 127.0.0.53), so the name servers of the DHCP leases
are written to /etc/resolv.conf here, before a store URL is mounted.

Where no DHCP server answers (a shop network with fixed addresses, a cable straight to the
NAS) a static address is typed: it goes to systemd-networkd as a runtime .network file for
that port (under /run: gone at the next boot), which takes the port over from the DHCP one
when networkd restarts.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import Hint, UsageError
from recovery.sys import systemctl
from recovery.sys.run import run

LEASES = Path("/run/systemd/netif/leases")
LINK_STATES = Path("/run/systemd/netif/links")  # networkd's state file per port (ifindex)
# A DHCP server answers within a second or two (networkd asks again after 1, 2, 4, 8 s):
# a port with a cable and no address after this long has no DHCP server on its network.
NO_ANSWER_SECONDS = 20
RESOLV_CONF = Path("/etc/resolv.conf")
RUNTIME_NETWORK = Path("/run/systemd/network")  # sorts before image-build's 20-wired.network
_STATIC_PREFIX = "10-recovery-static-"


@dataclass(frozen=True)
class Link:
    name: str
    mac: str
    carrier: bool  # a cable is plugged in and the link is up
    addresses: tuple[str, ...]  # "192.168.1.20/24"
    # With a cable and no address: seconds since networkd began asking DHCP (None: unknown)
    waiting: float | None = None

    @property
    def no_dhcp_answer(self) -> bool:
        return self.carrier and not self.addresses and (self.waiting or 0) >= NO_ANSWER_SECONDS

    def describe(self) -> str:
        if not self.carrier:
            return f"{self.name}: no cable"
        if self.no_dhcp_answer:
            return f"{self.name}: no DHCP answer in {self.waiting:.0f} s"
        return f"{self.name}: {', '.join(self.addresses) or 'waiting for an address (DHCP)'}"

    def advice(self) -> str:
        """What to do about a port whose DHCP request nobody answers ("" when it is fine)."""
        if not self.no_dhcp_answer:
            return ""
        return (f"No DHCP server answered on {self.name}: check that its cable goes to the "
                "shop's network (a switch or router, not straight to the NAS), or type a "
                "static address for it.")

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "mac": self.mac, "carrier": self.carrier,
                "addresses": list(self.addresses), "no_dhcp_answer": self.no_dhcp_answer,
                "waiting_seconds": None if self.waiting is None else round(self.waiting)}


def wired_links(quiet: bool = False) -> list[Link]:
    """Every Ethernet port (PCI or USB), with or without a cable (`quiet`: a repeated look,
    not logged)."""
    document = json.loads(run(["ip", "-j", "addr", "show"], quiet=quiet).stdout or b"[]")
    links = []
    for item in document:
        # Real ports have a device behind them; bridges, veth and ifb pairs do not.
        if item.get("link_type") != "ether" or not Path(
                f"/sys/class/net/{item['ifname']}/device").exists():
            continue
        addresses = tuple(f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", [])
                          if a.get("family") == "inet")
        flags = item.get("flags", [])
        carrier = "LOWER_UP" in flags and "NO-CARRIER" not in flags
        waiting = None if addresses or not carrier else _dhcp_waiting(item)
        links.append(Link(item["ifname"], item.get("address", ""), carrier, addresses,
                          waiting))
    return links


def _dhcp_waiting(item: dict[str, object], states: Path = LINK_STATES,
                  runtime: Path = RUNTIME_NETWORK) -> float | None:
    """Seconds a port with a cable has gone without an address: networkd writes its state
    file when the port's state changes (cable in, address got), not while DHCP asks
    again, so the file's age is how long it has been asking. None when the port has a
    typed address (not DHCP) or networkd has no file for it."""
    if _network_file(runtime, str(item["ifname"])).exists():
        return None
    try:
        changed = (states / str(item.get("ifindex"))).stat().st_mtime
    except OSError:
        return None
    return max(0.0, time.time() - changed)


def lease_name_servers(leases: Path = LEASES) -> list[str]:
    """DNS servers of the current DHCP leases (systemd-networkd's lease files)."""
    found: list[str] = []
    for lease in sorted(leases.glob("[!.]*")) if leases.is_dir() else []:
        try:
            text = lease.read_text(errors="replace")
        except FileNotFoundError:  # a lease dropped between listing and reading
            continue
        # networkd writes a lease as ".#<random>" and renames it: those are skipped above
        # (one vanished between the listing and the read and failed `recovery network`).
        for line in text.splitlines():
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


@dataclass(frozen=True)
class StaticAddress:
    """A typed address for one port: "192.168.1.50/24", gateway and name servers optional."""

    interface: str
    address: str
    gateway: str = ""
    name_servers: tuple[str, ...] = ()

    def network_file(self) -> str:
        lines = ["# written by recovery: a static address typed by the technician",
                 "[Match]", f"Name={self.interface}", "", "[Link]", "RequiredForOnline=no",
                 "", "[Network]", f"Address={self.address}"]
        lines += [f"Gateway={self.gateway}"] if self.gateway else []
        lines += [f"DNS={server}" for server in self.name_servers]
        # As the DHCP ports: nothing listens, nothing but this address.
        lines += ["LinkLocalAddressing=no", "IPv6AcceptRA=no", "LLDP=no", "EmitLLDP=no"]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, object]:
        return {"interface": self.interface, "address": self.address,
                "gateway": self.gateway, "name_servers": list(self.name_servers)}


def static_address(interface: str, address: str, gateway: str = "",
                   name_servers: str = "") -> StaticAddress:
    """Check what was typed; UsageError naming the field that is wrong."""
    example = "Type it like 192.168.1.50/24 (the /24 is the network's size; most shops use /24)."
    try:
        network = ipaddress.IPv4Interface(address.strip())
    except ValueError as exc:
        raise UsageError(f"'{address}' is not an IPv4 address with a prefix length.",
                         example) from exc
    if "/" not in address:
        raise UsageError(f"The address {address} has no prefix length.", example)
    if network.ip in (network.network.network_address, network.network.broadcast_address) \
            and network.network.prefixlen < 31:
        raise UsageError(f"{address} is the network's own or broadcast address, not a PC's.",
                         "Pick a free address inside the network, e.g. .50 instead of .0.")
    gateway = gateway.strip()
    if gateway:
        gateway_ip = _ipv4(gateway, "gateway")
        if gateway_ip not in network.network:
            raise UsageError(f"The gateway {gateway} is not in the network {network.network}.",
                             "Check the address's prefix length, or leave the gateway empty "
                             "when the NAS is in the same network.")
    servers = tuple(str(_ipv4(item, "name server"))
                    for item in name_servers.replace(",", " ").split())
    return StaticAddress(interface, network.with_prefixlen, gateway, servers)


def _ipv4(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError as exc:
        raise UsageError(f"The {what} '{value}' is not an IPv4 address.",
                         f"Type the {what} like 192.168.1.1, or leave it empty.") from exc


def pick_link(links: list[Link], name: str = "") -> Link:
    """The port a static address goes to: the named one, else the only one (or the only one
    with a cable)."""
    if name:
        for link in links:
            if link.name == name:
                return link
        raise UsageError(f"There is no Ethernet port {name}.",
                         f"Ports here: {', '.join(link.name for link in links) or 'none'}.")
    cabled = [link for link in links if link.carrier]
    for choice in (links, cabled):
        if len(choice) == 1:
            return choice[0]
    if not links:
        raise UsageError("This PC has no Ethernet port the live system knows.",
                         "Plug in a USB Ethernet adapter.")
    raise UsageError("Which Ethernet port should get the address?",
                     f"Ports here: {'; '.join(link.describe() for link in links)}.",
                     hint=Hint.NETWORK_PORT)


def set_static(config: StaticAddress, runtime: Path = RUNTIME_NETWORK,
               resolv: Path = RESOLV_CONF) -> None:
    """Give the port `config`'s address instead of asking DHCP."""
    runtime.mkdir(parents=True, exist_ok=True)
    _network_file(runtime, config.interface).write_text(config.network_file())
    _apply()
    if config.name_servers:
        resolv.unlink(missing_ok=True)
        resolv.write_text("# typed in recovery\n" + "".join(
            f"nameserver {server}\n" for server in config.name_servers))


def use_dhcp(interface: str, runtime: Path = RUNTIME_NETWORK) -> None:
    """Back to DHCP on the port (the image's own wired.network)."""
    _network_file(runtime, interface).unlink(missing_ok=True)
    _apply()


def _network_file(runtime: Path, interface: str) -> Path:
    return runtime / f"{_STATIC_PREFIX}{interface}.network"


def _apply() -> None:
    # networkctl reload/reconfigure would need D-Bus, which the live image leaves out: a
    # restart re-reads the .network files and sets every port up again from them.
    systemctl.restart("systemd-networkd.service")
