"""`recovery demo`: every main job on a generated Windows-like disk, with what happened.

Builds the disk, captures it, captures it again (only new chunks are stored), damages it
(wipes the partition table and overwrites part of the Windows volume), shows verify finding
the damage, restores with --delta (only the damaged chunks are written, then read back),
and checks the result with independent tools (ntfsclone's image of the Windows volume,
sgdisk's view of the table).
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from recovery.demo.disk import DemoDisk, build_windows_disk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.restore import RestoreRequest, restore
from recovery.engine.verify import verify
from recovery.events import EventSink, Notice, discard
from recovery.sys import ntfs3g
from recovery.units import MiB, human_size


@dataclass
class DemoStep:
    name: str
    ok: bool
    detail: str


@dataclass
class DemoReport:
    workdir: str
    steps: list[DemoStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def add(self, name: str, ok: bool, detail: str, events: EventSink) -> None:
        self.steps.append(DemoStep(name, ok, detail))
        events(Notice(f"{'ok ' if ok else 'FAILED'} {name}: {detail}",
                      "info" if ok else "warning"))

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "workdir": self.workdir,
                "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps]}

    def text(self) -> str:
        lines = [f"recovery demo in {self.workdir}"]
        lines += [f"  [{'ok' if s.ok else 'FAILED'}] {s.name}: {s.detail}" for s in self.steps]
        lines.append("demo passed" if self.ok else "demo FAILED")
        return "\n".join(lines)


def run_demo(workdir: Path | None = None, events: EventSink = discard) -> DemoReport:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="recovery-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = DemoReport(str(workdir))
    disk_path, store = workdir / "windows-disk.img", workdir / "store"
    demo = build_windows_disk(disk_path)
    source = "real hives from ../shared/fixtures" if demo.hives_from_fixtures else \
        "stand-in hives (shared fixtures not found)"
    report.add("build", True, f"GPT disk {human_size(demo.table.disk_size)} with ESP, MSR, "
               f"Windows and Recovery partitions; {source}", events)
    before = _ntfsclone_hash(demo)
    _capture_twice(disk_path, store, report, events)
    _damage(demo)
    found = verify(store, "demo-1", disk_path, events)
    report.add("damage", not found.ok, f"wiped the partition table, overwrote 24 MiB of the "
               f"Windows volume; verify found {len(found.problems)} problem(s)", events)
    summary = restore(RestoreRequest(store, "demo-1", disk_path, delta=True, confirmed=True),
                      events)
    report.add("restore --delta", summary.verified,
               f"{summary.chunks_written} chunks written ({human_size(summary.bytes_written)}),"
               f" {summary.chunks_skipped} already right, read back and verified", events)
    after = verify(store, "demo-1", disk_path, events)
    same = _ntfsclone_hash(demo) == before
    report.add("verify", after.ok and same,
               f"verify: {len(after.problems)} problem(s); ntfsclone image of the Windows "
               f"volume {'identical to' if same else 'DIFFERENT from'} the original", events)
    return report


def _capture_twice(disk: Path, store: Path, report: DemoReport, events: EventSink) -> None:
    first = capture(CaptureRequest(disk, store, name="demo-1"), events).stats
    rate = first.bytes_read / first.seconds / 1e6 if first.seconds else 0.0
    report.add("capture", first.chunks_new > 0,
               f"{human_size(first.bytes_read)} of used data in {first.seconds:.1f} s "
               f"({rate:.0f} MB/s), {human_size(first.bytes_stored)} stored, "
               f"{first.chunks_new} chunks", events)
    second = capture(CaptureRequest(disk, store, name="demo-2"), events).stats
    report.add("capture again", second.chunks_new == 0,
               f"{second.chunks_reused} chunks reused, {second.chunks_new} new, "
               f"{human_size(second.bytes_stored)} stored", events)


def _damage(demo: DemoDisk) -> None:
    rng = random.Random(1)
    windows = demo.windows
    with open(demo.path, "r+b") as disk:
        disk.write(bytes(64 * 1024))  # protective MBR and primary GPT
        disk.seek(windows.start + windows.size // 8)
        disk.write(rng.randbytes(24 * MiB))
        disk.flush()
        os.fsync(disk.fileno())


def _ntfsclone_hash(demo: DemoDisk) -> str:
    return ntfs3g.ntfsclone_image_hash(demo.path, demo.windows.start, demo.windows.size)
