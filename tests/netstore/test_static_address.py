"""A static address typed for a port (recovery network --static, the TUI's network screen):
what is checked before anything is applied. Applying it is tested in the live image
(tests/e2e/test_netstore.py): this machine's own network must never change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recovery.errors import UsageError
from recovery.sys.network import Link, StaticAddress, pick_link, static_address

ROOT = Path(__file__).resolve().parents[2]
PORTS = [Link("enp3s0", "52:54:00:12:34:56", True, ("192.168.1.20/24",)),
         Link("enp4s0", "52:54:00:12:34:57", False, ())]


def test_a_valid_address_with_gateway_and_name_servers() -> None:
    assert static_address("enp3s0", " 192.168.1.50/24", "192.168.1.1",
                          "192.168.1.2, 9.9.9.9") == StaticAddress(
        "enp3s0", "192.168.1.50/24", "192.168.1.1", ("192.168.1.2", "9.9.9.9"))


@pytest.mark.parametrize(("address", "gateway", "dns", "says"), [
    ("192.168.1.50", "", "", "no prefix length"),
    ("192.168.1.300/24", "", "", "not an IPv4 address"),
    ("nas/24", "", "", "not an IPv4 address"),
    ("192.168.1.0/24", "", "", "network's own or broadcast"),
    ("192.168.1.255/24", "", "", "network's own or broadcast"),
    ("192.168.1.50/24", "192.168.2.1", "", "not in the network"),
    ("192.168.1.50/24", "gateway", "", "gateway 'gateway' is not"),
    ("192.168.1.50/24", "", "192.168.1.1;8.8.8.8", "name server"),
])
def test_bad_input_names_the_field(address: str, gateway: str, dns: str, says: str) -> None:
    with pytest.raises(UsageError) as refused:
        static_address("enp3s0", address, gateway, dns)
    assert says in refused.value.title
    assert refused.value.action


def test_the_port_is_the_named_one_or_the_only_one_with_a_cable() -> None:
    assert pick_link(PORTS).name == "enp3s0"
    assert pick_link(PORTS, "enp4s0").name == "enp4s0"
    with pytest.raises(UsageError, match="no Ethernet port eth9"):
        pick_link(PORTS, "eth9")
    both = [PORTS[0], Link("enp4s0", "", True, ())]
    with pytest.raises(UsageError, match="Which Ethernet port"):
        pick_link(both)
    with pytest.raises(UsageError, match="no Ethernet port"):
        pick_link([])


def cli(*argv: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "recovery", "network", *argv, "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("argv", [
    ("--static", "192.168.1.0/24"),  # refused before anything is applied
    ("--static", "10.0.0.5/24", "--dhcp"),
    ("--gateway", "10.0.0.1"),
    ("--static", "10.0.0.5/24", "--interface", "no-such-port"),
])
def test_cli_refuses_bad_input_with_exit_2_and_changes_nothing(argv: tuple[str, ...]) -> None:
    before = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout
    code, document = cli(*argv)
    assert code == 2 and document["ok"] is False, document
    assert subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout == before
