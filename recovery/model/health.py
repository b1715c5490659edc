"""A disk's health as the technician needs it before reading or writing it.

`status` is one word a list can show (ok, warning, failing, unknown); `reasons` are the
sentences behind it, each naming the attribute and its value ("Current pending sectors:
12"), worst first; `attributes` are the raw numbers for scripts and the log. `unknown` is
not an error: loop devices, image files, virtio disks and many USB bridges report nothing.
The thresholds that decide the status live with the parser (recovery/sys/smartctl.py) and
are listed in the README ("Disk health").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HealthStatus = Literal["ok", "warning", "failing", "unknown"]

# Worst first: a disk's status is the worst of what its attributes say.
_RANK: dict[str, int] = {"failing": 0, "warning": 1, "ok": 2, "unknown": 3}

LABELS: dict[str, str] = {"ok": "OK", "warning": "WARNING", "failing": "FAILING",
                          "unknown": "unknown"}


@dataclass(frozen=True)
class Finding:
    """One sentence about the disk: an attribute outside its healthy range, or why nothing
    could be read (status "unknown")."""

    status: HealthStatus
    reason: str


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    findings: tuple[Finding, ...] = ()
    attributes: dict[str, int | str | bool] = field(default_factory=dict, hash=False)

    @classmethod
    def unknown(cls, reason: str,
                attributes: dict[str, int | str | bool] | None = None) -> Health:
        return cls("unknown", (Finding("unknown", reason),), dict(attributes or {}))

    @classmethod
    def from_findings(cls, findings: list[Finding],
                      attributes: dict[str, int | str | bool]) -> Health:
        ordered = tuple(sorted(findings, key=lambda f: _RANK[f.status]))
        status: HealthStatus = ordered[0].status if ordered else "ok"
        return cls(status, ordered, dict(attributes))

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.reason for f in self.findings)

    def reasons_of(self, status: HealthStatus) -> tuple[str, ...]:
        return tuple(f.reason for f in self.findings if f.status == status)

    @property
    def is_failing(self) -> bool:
        return self.status == "failing"

    @property
    def needs_care(self) -> bool:
        """Failing or warning: read it once, carefully (rescue mode), and never trust it."""
        return self.status in ("failing", "warning")

    def label(self) -> str:
        return LABELS[self.status]

    def describe(self) -> str:
        """'FAILING: Current pending sectors: 12; Reallocated sectors: 3' or 'OK'."""
        if not self.findings:
            return self.label()
        return f"{self.label()}: {'; '.join(self.reasons)}"

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "reasons": list(self.reasons),
                "attributes": dict(self.attributes)}


NOT_CHECKED = Health.unknown("not checked yet")
