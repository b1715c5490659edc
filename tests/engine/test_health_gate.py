"""Disk health in `recovery disks` and in the safety gate.

No disk that can fail exists here (loop devices have no SMART), so the failing target's
health is injected: it is parsed from an edited copy of a document recorded from QEMU's SATA
disk (tests/data/smartctl/edited-sata-pending-sectors.json) and put on the real loop
device's Disk (gate test) or returned by the health reader in place of smartctl (CLI tests).
Everything else is real: the loop device, the image store, the restore and its read-back.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine import health as health_engine
from recovery.engine import safety
from recovery.engine.devices import resolve_disk
from recovery.errors import FailingTargetError, Hint, NotConfirmedError
from recovery.model.disk import Disk
from recovery.model.health import Health
from recovery.sys import smartctl
from recovery.ui import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "smartctl"


def _recorded(name: str) -> Health:
    return smartctl.parse(json.loads((DATA / name).read_text()))


def _settled_loop(make_loop: Any, size: int) -> Path:
    _, device = make_loop(size)
    subprocess.run(["udevadm", "settle"], check=False)
    return Path(device)


def test_disks_json_says_unknown_for_a_loop_device(make_loop: Any) -> None:
    device = _settled_loop(make_loop, 16 << 20)
    result = subprocess.run([sys.executable, "-m", "recovery", "disks", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = [d for d in json.loads(result.stdout)["disks"] if d["node"] == str(device)]
    assert len(found) == 1
    assert found[0]["health"] == {"status": "unknown", "attributes": {},
                                  "reasons": ["no SMART data: Unable to detect device type"]}
    text = subprocess.run([sys.executable, "-m", "recovery", "disks"], capture_output=True,
                          text=True, timeout=120).stdout
    assert "health unknown: no SMART data: Unable to detect device type" in text



def test_disks_text_and_json_name_a_failing_disks_attributes(
        make_loop: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """What a technician reads in `recovery disks` for a failing disk: the status and the
    attributes that make it so, in the text and in the JSON."""
    device = _settled_loop(make_loop, 16 << 20)
    failing = _recorded("edited-sata-pending-sectors.json")
    monkeypatch.setattr(health_engine, "disk_health", lambda disk, timeout: failing
                        if disk.node == device else Health.unknown("other"))
    assert cli.main(["disks"]) == 0
    text = capsys.readouterr().out
    assert ("health FAILING: Current pending sectors: 12; Offline uncorrectable sectors: 2; "
            "Reallocated sectors: 8") in text
    code, out = _run_cli(capsys, "disks")
    found = next(d["health"] for d in out["disks"] if d["node"] == str(device))
    assert code == 0 and found["status"] == "failing"
    assert found["reasons"][:2] == ["Current pending sectors: 12",
                                    "Offline uncorrectable sectors: 2"]
    assert found["attributes"] == failing.attributes and found["attributes"]

def _gate(target: Disk, allow: bool = False) -> safety.GateInput:
    return safety.GateInput(target=target, required_size=target.size, sector_size=512,
                            allow_failing_target=allow)


def test_gate_refuses_a_failing_target_unless_allowed(make_loop: Any) -> None:
    device = _settled_loop(make_loop, 16 << 20)
    real = resolve_disk(device)
    assert safety.refusals(_gate(real)) == []
    failing = dataclasses.replace(real, health=_recorded("edited-sata-pending-sectors.json"))
    refused = safety.refusals(_gate(failing))
    assert [type(r) for r in refused] == [FailingTargetError]
    assert refused[0].code == 38 and refused[0].kind == "target-failing"
    assert "Current pending sectors: 12; Offline uncorrectable sectors: 2." in refused[0].title
    assert "Reallocated" not in refused[0].title  # a warning, not why it is refused
    # The engine states the fact; each shell words "insist" itself (flag or question).
    assert refused[0].hint is Hint.ALLOW_FAILING_TARGET and "--" not in refused[0].action
    assert safety.refusals(_gate(failing, allow=True)) == []


@pytest.mark.parametrize("name", ["edited-sata-crc-reallocated-warning.json",
                                  "edited-nvme-worn-warning.json", "qemu-usb-a.json"])
def test_gate_lets_warning_and_unknown_targets_pass(make_loop: Any, name: str) -> None:
    device = _settled_loop(make_loop, 16 << 20)
    disk = dataclasses.replace(resolve_disk(device), health=_recorded(name))
    assert safety.refusals(_gate(disk)) == []


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = cli.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_restore_onto_failing_target_needs_the_flag(
        make_loop: Any, small_disk: DemoDisk, small_store: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    device = _settled_loop(make_loop, small_disk.table.disk_size)
    failing = _recorded("edited-sata-pending-sectors.json")
    asked: list[Path] = []

    def reader(disk: Disk, timeout: float) -> Health:
        asked.append(disk.node)
        return failing if disk.node == device else Health.unknown("other")
    monkeypatch.setattr(health_engine, "disk_health", reader)

    code, out = _run_cli(capsys, "restore", "--store", str(small_store), "base", str(device),
                         "--yes")
    assert code == FailingTargetError.code and out["error"]["kind"] == "target-failing"
    assert "Current pending sectors: 12" in out["error"]["title"]
    assert asked == [device]

    code, out = _run_cli(capsys, "restore", "--store", str(small_store), "base", str(device),
                         "--allow-failing-target")
    assert code == NotConfirmedError.code  # insisting is not confirming

    code, out = _run_cli(capsys, "restore", "--store", str(small_store), "base", str(device),
                         "--yes", "--allow-failing-target")
    assert code == 0 and out["verified"] is True and out["chunks_written"] > 0
