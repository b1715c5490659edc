"""smartctl (smartmontools) --json: a disk's SMART health as a `Health`.

`read_health` asks the disk through smartctl's own device-type detection first; a USB disk
that answers nothing that way is asked again through the SAT pass-through (`-d sat`), which
most USB-SATA bridges implement. Anything that reports no SMART data (loop devices, virtio,
a bridge without pass-through, a disk with SMART switched off) is `unknown`, not an error.

Thresholds (the README's "Disk health" table says the same):
- failing: overall self-assessment FAILED; an ATA attribute at or below its failure
  threshold now; pending (197) or offline-uncorrectable (198) sectors > 0; reallocated
  sectors (5) >= 100; NVMe critical warning bit other than temperature; NVMe media errors
  > 0; available spare below its threshold; percentage used >= 100.
- warning: reallocated sectors 1-99; UDMA CRC errors (199) > 0 (cable or bridge); an ATA
  attribute that failed in the past; NVMe temperature warning; available spare within 10
  points of its threshold (0 % with a 0 % threshold counts as not reported); percentage
  used >= 90; SCSI grown defects > 0; a failed self-test in the log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recovery.errors import ToolError
from recovery.model.health import Finding, Health, HealthStatus
from recovery.sys.run import run

DEFAULT_TIMEOUT = 10.0  # seconds per smartctl call; a hung USB bridge must not hang a list

Attributes = dict[str, int | str | bool]
Query = Callable[[Path, str | None, float], dict[str, Any]]

# ATA attribute id -> (attributes key, what the technician reads)
ATA_COUNTERS: dict[int, tuple[str, str]] = {
    5: ("reallocated_sectors", "Reallocated sectors"),
    197: ("pending_sectors", "Current pending sectors"),
    198: ("offline_uncorrectable", "Offline uncorrectable sectors"),
    199: ("udma_crc_errors", "UDMA CRC errors"),
}
REALLOCATED_FAILING = 100
SPARE_MARGIN = 10  # percentage points above the NVMe spare threshold that warn
WEAR_WARNING, WEAR_FAILING = 90, 100  # NVMe percentage used

# NVMe critical warning bits (NVMe base specification, SMART / Health log byte 0).
NVME_WARNINGS: dict[int, tuple[HealthStatus, str]] = {
    0x01: ("failing", "available spare below threshold"),
    0x02: ("warning", "temperature outside its limits"),
    0x04: ("failing", "reliability degraded by media or internal errors"),
    0x08: ("failing", "media placed in read-only mode"),
    0x10: ("failing", "volatile memory backup failed"),
}
SELF_TEST_ERRORS = 0x80  # smartctl exit status bit 7: the self-test log holds errors
OPEN_FAILED = 0x02  # exit status bit 1: the device did not open or answer the identify
_LEADING_INT = re.compile(r"\s*(\d+)")


def query(node: Path, device_type: str | None = None,
          timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """smartctl's JSON document for one disk (its exit status is a bit mask of findings, so
    a non-zero status is normal: it is read from the document, not raised)."""
    argv = ["smartctl", "--json", "-a", *(["-d", device_type] if device_type else []),
            str(node)]
    # A look repeated at every disk listing; the TUI logs each disk's health instead.
    result = run(argv, check=False, timeout=timeout, quiet=True)
    try:
        document = json.loads(result.stdout)
    except ValueError as exc:
        raise ToolError(f"smartctl printed no JSON for {node}.",
                        "Check that smartmontools is 7.0 or newer.") from exc
    if not isinstance(document, dict):
        raise ToolError(f"smartctl printed no JSON object for {node}.", "See the log.")
    return document


def read_health(node: Path, bus: str, timeout: float = DEFAULT_TIMEOUT,
                ask: Query = query) -> Health:
    """The health of the disk at `node`; never raises for a disk that cannot tell."""
    try:
        health = parse(ask(node, None, timeout))
        if health.status == "unknown" and bus == "usb":
            through_sat = parse(ask(node, "sat", timeout))
            if through_sat.status != "unknown":
                return through_sat
            return Health.unknown("the USB bridge passes no SMART data through "
                                  f"({health.reasons[0]}; -d sat: {through_sat.reasons[0]})")
    except ToolError as error:
        return Health.unknown(f"smartctl could not ask the disk: {error.title}")
    return health


def parse(document: dict[str, Any]) -> Health:
    """A `Health` from one `smartctl --json -a` (or -x) document."""
    attributes: Attributes = {}
    device = document.get("device")
    if isinstance(device, dict) and device.get("type"):
        attributes["device_type"] = str(device["type"])
    if not _has_smart_data(document):
        return Health.unknown(_why_nothing(document), attributes)
    findings = _overall(document, attributes)
    findings += _ata(document, attributes)
    findings += _nvme(document, attributes)
    findings += _scsi(document, attributes)
    _common(document, attributes)
    if _exit_status(document) & SELF_TEST_ERRORS:
        findings.append(Finding("warning", "Self-test log: a self-test found errors"))
    return Health.from_findings(findings, attributes)


def _has_smart_data(document: dict[str, Any]) -> bool:
    keys = ("smart_status", "ata_smart_attributes", "nvme_smart_health_information_log",
            "scsi_grown_defect_list")
    return any(key in document for key in keys)


def _exit_status(document: dict[str, Any]) -> int:
    status = document.get("smartctl", {}).get("exit_status", 0)
    return status if isinstance(status, int) else 0


def _why_nothing(document: dict[str, Any]) -> str:
    support = document.get("smart_support")
    if isinstance(support, dict) and support.get("available") is False:
        return "the disk has no SMART"
    if isinstance(support, dict) and support.get("enabled") is False:
        return "SMART is switched off on this disk (smartctl -s on DEVICE enables it)"
    messages = document.get("smartctl", {}).get("messages", [])
    for message in messages if isinstance(messages, list) else []:
        text = str(message.get("string", "")) if isinstance(message, dict) else ""
        if text and message.get("severity") == "error":
            # "/dev/vda: Unable to detect device type" -> "Unable to detect device type"
            return "no SMART data: " + text.split(": ", 1)[-1].strip().splitlines()[0]
    if _exit_status(document) & OPEN_FAILED:
        return "no SMART data: the device did not answer smartctl's identify command"
    return "no SMART data"


def _overall(document: dict[str, Any], attributes: Attributes) -> list[Finding]:
    status = document.get("smart_status")
    if not isinstance(status, dict) or "passed" not in status:
        return []
    passed = bool(status["passed"])
    attributes["self_assessment"] = "PASSED" if passed else "FAILED"
    return [] if passed else [Finding("failing", "Overall self-assessment: FAILED")]


def _raw_count(entry: dict[str, Any]) -> int:
    """An ATA counter's raw value. Some drives pack other fields into the upper raw bytes;
    smartctl's own reading ("raw.string") starts with the counter."""
    raw = entry.get("raw", {})
    match = _LEADING_INT.match(str(raw.get("string", "")))
    if match:
        return int(match.group(1))
    value = raw.get("value", 0)
    return int(value) & 0xFFFFFFFF if isinstance(value, int) else 0


def _ata(document: dict[str, Any], attributes: Attributes) -> list[Finding]:
    table = document.get("ata_smart_attributes", {}).get("table", [])
    findings: list[Finding] = []
    for entry in table if isinstance(table, list) else []:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("name", f"attribute {entry.get('id')}")).replace("_", " ")
        when_failed = str(entry.get("when_failed", "")).strip().lower()
        if when_failed == "now":
            findings.append(Finding("failing", f"{name}: at or below its failure threshold "
                                    f"(value {entry.get('value')}, threshold "
                                    f"{entry.get('thresh')})"))
        elif when_failed == "past":
            findings.append(Finding("warning", f"{name}: fell to its failure threshold in "
                                    "the past"))
        counter = ATA_COUNTERS.get(int(entry.get("id", 0)))
        if counter is not None:
            key, label = counter
            attributes[key] = count = _raw_count(entry)
            findings += _ata_counter(key, label, count)
    return findings


def _ata_counter(key: str, label: str, count: int) -> list[Finding]:
    if count <= 0:
        return []
    text = f"{label}: {count}"
    if key in ("pending_sectors", "offline_uncorrectable"):
        return [Finding("failing", text)]
    if key == "reallocated_sectors":
        return [Finding("failing" if count >= REALLOCATED_FAILING else "warning", text)]
    return [Finding("warning", f"{text} (the cable or USB bridge, not the disk: reseat or "
                    "replace it)")]


def _nvme(document: dict[str, Any], attributes: Attributes) -> list[Finding]:
    log = document.get("nvme_smart_health_information_log")
    if not isinstance(log, dict):
        return []
    for key in ("critical_warning", "media_errors", "available_spare",
                "available_spare_threshold", "percentage_used"):
        if isinstance(log.get(key), int):
            attributes[key] = log[key]
    findings = [Finding(status, f"NVMe critical warning: {text}")
                for bit, (status, text) in NVME_WARNINGS.items()
                if int(log.get("critical_warning", 0)) & bit]
    if int(log.get("media_errors", 0)) > 0:
        findings.append(Finding("failing", f"Media and data integrity errors: "
                                f"{log['media_errors']}"))
    spare, threshold = log.get("available_spare"), log.get("available_spare_threshold")
    # 0 % spare with a 0 % threshold is "not reported" (QEMU's emulated NVMe says so); a
    # drive that really ran out of spare also sets critical warning bit 0.
    if isinstance(spare, int) and isinstance(threshold, int) and (spare, threshold) != (0, 0):
        text = f"Available spare: {spare}% (threshold {threshold}%)"
        if spare < threshold:
            findings.append(Finding("failing", text))
        elif spare < threshold + SPARE_MARGIN and spare < 100:
            findings.append(Finding("warning", text))
    used = log.get("percentage_used")
    if isinstance(used, int) and used >= WEAR_WARNING:
        findings.append(Finding("failing" if used >= WEAR_FAILING else "warning",
                                f"Percentage used: {used}% of its rated endurance"))
    return findings


def _scsi(document: dict[str, Any], attributes: Attributes) -> list[Finding]:
    defects = document.get("scsi_grown_defect_list")
    if not isinstance(defects, int):
        return []
    attributes["grown_defects"] = defects
    return [Finding("warning", f"Grown defect list: {defects}")] if defects > 0 else []


def _common(document: dict[str, Any], attributes: Attributes) -> None:
    hours = document.get("power_on_time", {}).get("hours")
    if isinstance(hours, int):
        attributes["power_on_hours"] = hours
    temperature = document.get("temperature", {}).get("current")
    if isinstance(temperature, int):
        attributes["temperature_c"] = temperature
