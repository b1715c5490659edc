"""The SMART health parser over every recorded smartctl document, the USB fallback, and a
listing that a hung disk cannot hang.

tests/data/smartctl/README.md says which documents are recordings from QEMU's emulated disks
and which are edited copies (no emulated disk can fail, so failing states are edited in).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from recovery.engine.health import disk_health, with_health
from recovery.errors import ToolError
from recovery.model.disk import Disk
from recovery.model.health import Health
from recovery.sys import smartctl

DATA = Path(__file__).resolve().parents[1] / "data" / "smartctl"

# file -> (status, reasons that must be there, attributes that must have these values)
EXPECTED: dict[str, tuple[str, list[str], dict[str, object]]] = {
    "qemu-nvme-a.json": ("ok", [], {"critical_warning": 0, "media_errors": 0,
                                    "percentage_used": 0, "self_assessment": "PASSED"}),
    "qemu-nvme-x.json": ("ok", [], {"device_type": "nvme"}),
    "qemu-sata-a.json": ("ok", [], {"reallocated_sectors": 0, "device_type": "sat",
                                    "power_on_hours": 1}),
    "qemu-sata-x.json": ("ok", [], {"reallocated_sectors": 0, "temperature_c": 31}),
    "qemu-usb-a.json": ("unknown", ["no SMART data: Unknown USB bridge"], {}),
    "qemu-usb-x.json": ("unknown", ["no SMART data: Unknown USB bridge"], {}),
    "qemu-usb-sat-a.json": ("unknown", ["did not answer"], {"device_type": "sat"}),
    "qemu-usb-sat-x.json": ("unknown", ["did not answer"], {"device_type": "sat"}),
    "qemu-virtio-a.json": ("unknown", ["Unable to detect device type"], {}),
    "qemu-virtio-x.json": ("unknown", ["Unable to detect device type"], {}),
    "edited-sata-pending-sectors.json": (
        "failing", ["Current pending sectors: 12", "Offline uncorrectable sectors: 2",
                    "Reallocated sectors: 8"],
        {"pending_sectors": 12, "offline_uncorrectable": 2, "reallocated_sectors": 8}),
    "edited-sata-self-assessment-failed.json": (
        "failing", ["Overall self-assessment: FAILED", "Reallocated sectors: 1650",
                    "at or below its failure threshold (value 30, threshold 36)"],
        {"self_assessment": "FAILED"}),
    "edited-sata-crc-reallocated-warning.json": (
        "warning", ["UDMA CRC errors: 27", "Reallocated sectors: 4", "in the past"],
        {"udma_crc_errors": 27}),
    "edited-nvme-media-errors.json": (
        "failing", ["Media and data integrity errors: 7", "Available spare: 4% (threshold 10%)",
                    "Percentage used: 103%", "reliability degraded"],
        {"media_errors": 7, "critical_warning": 5}),
    "edited-nvme-worn-warning.json": (
        "warning", ["Percentage used: 92%", "Available spare: 15%", "temperature"],
        {"percentage_used": 92}),
    "edited-usb-sat-pending-sectors.json": ("failing", ["Current pending sectors: 12"], {}),
}


def _doc(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / name).read_text())
    return document


def test_every_document_has_an_expectation() -> None:
    recorded = [*DATA.glob("qemu-*.json"), *DATA.glob("edited-*.json")]
    assert sorted(p.name for p in recorded) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse(name: str) -> None:
    status, reasons, attributes = EXPECTED[name]
    health = smartctl.parse(_doc(name))
    assert health.status == status, health.describe()
    for reason in reasons:
        assert any(reason in r for r in health.reasons), (reason, health.reasons)
    for key, value in attributes.items():
        assert health.attributes[key] == value, (key, health.attributes)
    if status in ("ok", "unknown"):
        assert health.reasons_of("failing") == health.reasons_of("warning") == ()
    payload = health.to_dict()
    assert set(payload) == {"status", "reasons", "attributes"}
    json.dumps(payload)


def test_failing_reasons_come_before_warnings() -> None:
    health = smartctl.parse(_doc("edited-sata-pending-sectors.json"))
    assert health.reasons[-1] == "Reallocated sectors: 8"  # a warning on its own
    assert health.reasons_of("failing") == ("Current pending sectors: 12",
                                            "Offline uncorrectable sectors: 2")


def _answers(documents: dict[str | None, str]) -> tuple[smartctl.Query, list[str | None]]:
    asked: list[str | None] = []

    def ask(node: Path, device_type: str | None, timeout: float) -> dict[str, Any]:
        asked.append(device_type)
        return _doc(documents[device_type])
    return ask, asked


def test_usb_disk_is_asked_again_through_sat() -> None:
    ask, asked = _answers({None: "qemu-usb-a.json", "sat": "edited-usb-sat-pending-sectors.json"})
    health = smartctl.read_health(Path("/dev/sdb"), "usb", ask=ask)
    assert asked == [None, "sat"]
    assert health.status == "failing" and "Current pending sectors: 12" in health.reasons


def test_usb_bridge_without_pass_through_is_unknown_and_says_why() -> None:
    ask, asked = _answers({None: "qemu-usb-a.json", "sat": "qemu-usb-sat-a.json"})
    health = smartctl.read_health(Path("/dev/sdb"), "usb", ask=ask)
    assert asked == [None, "sat"] and health.status == "unknown"
    assert "USB bridge passes no SMART data" in health.reasons[0]
    assert "Unknown USB bridge" in health.reasons[0]


def test_sata_disk_is_asked_once() -> None:
    ask, asked = _answers({None: "qemu-sata-a.json"})
    assert smartctl.read_health(Path("/dev/sda"), "sata", ask=ask).status == "ok"
    assert asked == [None]


def test_smartctl_that_does_not_answer_is_unknown_not_an_error() -> None:
    def hung(node: Path, device_type: str | None, timeout: float) -> dict[str, Any]:
        raise ToolError(f"'smartctl' did not finish within {timeout:.0f} s.", "Check it.")
    health = smartctl.read_health(Path("/dev/sdc"), "usb", timeout=3, ask=hung)
    assert health.status == "unknown" and "did not finish within 3 s" in health.reasons[0]


@pytest.mark.root("a loop device for smartctl to ask")
def test_real_smartctl_on_a_loop_device_is_unknown(make_loop: Any) -> None:
    _, device = make_loop(8 << 20)
    health = smartctl.read_health(device, "loop")
    assert health.status == "unknown"
    assert health.reasons == ("no SMART data: Unable to detect device type",)


def _disk(node: str, bus: str = "sata") -> Disk:
    return Disk(stable_id=node, node=Path(node), model="m", serial="", wwn="", bus=bus,
                size=1 << 30, logical_sector_size=512, physical_sector_size=512,
                removable=False, read_only=False)


def test_image_file_is_not_asked() -> None:
    health = disk_health(_disk("/tmp/some.img", bus="file"))
    assert health.status == "unknown" and "image file" in health.reasons[0]


def test_a_disk_that_hangs_does_not_hang_the_listing() -> None:
    """One disk's smartctl blocks (a hung USB bridge); the others are still reported and
    the hung one is unknown once the listing's time is up."""
    release = threading.Event()

    def reader(disk: Disk, timeout: float) -> Health:
        if disk.node.name == "sdb":
            release.wait(60)
        return smartctl.parse(_doc("qemu-sata-a.json"))

    try:
        found = with_health([_disk("/dev/sda"), _disk("/dev/sdb", "usb"),
                             _disk("/dev/sdc")], timeout=1, reader=reader)
    finally:
        release.set()
    assert [d.node.name for d in found] == ["sda", "sdb", "sdc"]
    assert [d.health.status for d in found] == ["ok", "unknown", "ok"]
    assert "did not answer within 1 s" in found[1].health.reasons[0]


def test_live_image_listing_recorded_in_qemu() -> None:
    """`recovery disks --json` as the live image printed it on the uefi-all-buses machine
    (python3 -m qemu record-smartctl): SMART read from NVMe and AHCI, none from the
    usb-storage bridge (even through -d sat), virtio and the squashfs loop device."""
    listing = json.loads((DATA / "recovery-disks-uefi-all-buses.json").read_text())
    health = {d["bus"]: d["health"] for d in listing["disks"]}
    assert {bus: h["status"] for bus, h in health.items()} == {
        "nvme": "ok", "sata": "ok", "usb": "unknown", "virtio": "unknown", "loop": "unknown"}
    assert health["sata"]["attributes"]["self_assessment"] == "PASSED"
    assert "USB bridge passes no SMART data" in health["usb"]["reasons"][0]
