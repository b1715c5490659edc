"""The outcome of the last full check of an image: images/NAME/verified.yaml.

Kept beside the manifest, never in it: the manifest is sealed by its own hash at capture
time, and a later check must not touch it. The record is written atomically, so a power cut
leaves the previous record or the new one. It says what a check found at that moment; a
drive that degrades afterwards is only caught by checking again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from recovery.store import files

VERIFIED_FILE = "verified.yaml"


@dataclass(frozen=True)
class Verification:
    checked: str  # UTC timestamp of the end of the check
    ok: bool
    problems: int  # how many chunks were missing or damaged
    chunks_checked: int
    bytes_checked: int
    tool_version: str

    def describe(self) -> str:
        """'verified OK 2026-11-25 15:30' / 'verification FAILED (3 problems) 2026-...'."""
        when = self.checked[:16].replace("T", " ")
        if self.ok:
            return f"verified OK {when}"
        return f"verification FAILED ({self.problems} problems) {when}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record(image_folder: Path, verification: Verification, store_root: Path) -> None:
    """Write the record for the image in `image_folder`; raises StoreError when the store
    cannot be written (read-only mount, full, unplugged)."""
    text = yaml.safe_dump(verification.to_dict(), sort_keys=False)
    files.write_atomic(image_folder / VERIFIED_FILE, text.encode(), store_root)
    files.fsync_dir(image_folder)


def read(image_folder: Path) -> Verification | None:
    """The last record, or None when the image was never checked or the record is unreadable
    (an unreadable record is no evidence of a check)."""
    try:
        document = yaml.safe_load((image_folder / VERIFIED_FILE).read_text())
        return Verification(
            checked=str(document["checked"]), ok=bool(document["ok"]),
            problems=int(document["problems"]),
            chunks_checked=int(document["chunks_checked"]),
            bytes_checked=int(document["bytes_checked"]),
            tool_version=str(document["tool_version"]))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None
