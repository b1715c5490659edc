"""A port with a cable whose DHCP request nobody answers (issue 13: "no DHCP answer"): how
long it has waited comes from the age of systemd-networkd's state file for the port, and
after NO_ANSWER_SECONDS the port is named with what to do. In the live image this is
checked with a second NIC on an empty QEMU hub (tests/e2e/test_netstore.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from recovery.sys.network import NO_ANSWER_SECONDS, Link, _dhcp_waiting
from recovery.ui.tui.screens.network import default_port

GOT = Link("enp3s0", "52:54:00:12:34:56", True, ("10.0.2.15/24",))


def test_the_wait_is_the_age_of_networkds_state_file(tmp_path: Path) -> None:
    states, runtime = tmp_path / "links", tmp_path / "network"
    states.mkdir()
    runtime.mkdir()
    (states / "3").write_text("ADMIN_STATE=configuring\nOPER_STATE=carrier\n")
    os.utime(states / "3", (time.time() - 45, time.time() - 45))
    port = {"ifname": "enp4s0", "ifindex": 3}
    waited = _dhcp_waiting(port, states, runtime)
    assert waited is not None and 44 <= waited <= 60
    assert _dhcp_waiting({"ifname": "enp5s0", "ifindex": 4}, states, runtime) is None
    # A typed (static) address is not DHCP: nothing is waited for.
    (runtime / "10-recovery-static-enp4s0.network").write_text("[Match]\nName=enp4s0\n")
    assert _dhcp_waiting(port, states, runtime) is None


def test_a_port_without_an_answer_is_named_with_what_to_do() -> None:
    silent = Link("enp4s0", "52:54:00:12:34:57", True, (), NO_ANSWER_SECONDS + 25.0)
    assert silent.no_dhcp_answer
    assert silent.describe() == f"enp4s0: no DHCP answer in {NO_ANSWER_SECONDS + 25} s"
    advice = silent.advice()
    assert "No DHCP server answered on enp4s0" in advice
    assert "type a static address for it" in advice
    assert silent.to_dict()["no_dhcp_answer"] is True
    # DHCP's first tries, an unknown wait, no cable, an address: not (yet) a missing answer.
    for link in (Link("enp4s0", "", True, (), 3.0), Link("enp4s0", "", True, ()),
                 Link("enp4s0", "", False, (), 300.0), GOT):
        assert not link.no_dhcp_answer and link.advice() == ""
    assert Link("enp4s0", "", True, (), 3.0).describe() == \
        "enp4s0: waiting for an address (DHCP)"
    # The network screen offers the port that needs a typed address.
    assert default_port([GOT, silent]) == "enp4s0"
    assert default_port([GOT, Link("enp4s0", "", True, (), 3.0)]) == "enp3s0"
