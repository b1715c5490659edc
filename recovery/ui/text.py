"""Short plain-text renderings of engine results for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recovery.engine.capture import CapturePlan
from recovery.engine.capture_result import CapturedPartition, CaptureSummary
from recovery.engine.restore import RestorePlan, RestoreSummary
from recovery.engine.verify import VerifySummary
from recovery.model.disk import Disk
from recovery.model.layout import PartitionTable
from recovery.model.manifest import DiskAreaDamage
from recovery.store.images import ImageInfo
from recovery.ui.render import cli_action
from recovery.units import human_rate, human_size


def disks(found: list[Disk], store_holders: set[Path] | None = None) -> str:
    if not found:
        return "No disks found. Is the drive connected (and udev running)?"
    lines = []
    for disk in found:
        flags = [flag for flag, on in (("removable", disk.removable),
                                       ("read-only", disk.read_only),
                                       ("live medium", disk.holds_live_medium),
                                       ("holds the store",
                                        disk.node in (store_holders or set())),
                                       ("mounted", disk.is_mounted)) if on]
        extra = f"  [{', '.join(flags)}]" if flags else ""
        lines.append(f"{disk.node}  {disk.describe()}{extra}")
        lines.append(f"    id {disk.stable_id}, sectors {disk.logical_sector_size}/"
                     f"{disk.physical_sector_size}")
        lines.append(f"    health {disk.health.describe()}")
        for part in disk.partitions:
            where = f" on {', '.join(part.mountpoints)}" if part.mountpoints else ""
            label = f" '{part.fs_label}'" if part.fs_label else ""
            lines.append(f"    {part.number:>2}  {human_size(part.size):>10}  "
                         f"{part.fs_type or '-':<8}{label}  {part.part_name}{where}")
    return "\n".join(lines)


def capture_plan(plan: CapturePlan) -> str:
    lines = [f"Capture {plan.disk.node}: {plan.disk.describe()} [{plan.identity.stable_id}]"
             + (f" into {plan.request.store}" if plan.request.store else "")]
    for planned in plan.partitions:
        mark = "capture" if planned.selected else "leave out"
        lines.append(f"  partition {planned.partition.number}: {planned.role:<8} "
                     f"{planned.volume.fs_type or '-':<9} used "
                     f"{human_size(planned.volume.used_bytes)} ({mark})")
    lines += [f"refused: {r.title} {cli_action(r)}" for r in plan.refusals]
    return "\n".join(lines)


def capture_summary(summary: CaptureSummary) -> str:
    stats = summary.stats
    rate = stats.bytes_read / stats.seconds if stats.seconds else 0.0
    lines = [f"Captured image '{summary.image}' into {summary.store}",
             f"  read {human_size(stats.bytes_read)} in {stats.seconds:.1f} s "
             f"({human_rate(rate)}), stored {human_size(stats.bytes_stored)} new",
             f"  chunks: {stats.chunks_new} new, {stats.chunks_reused} reused, "
             f"{stats.chunks_zero} zero"]
    for part in summary.partitions:
        mark = "captured" if part.selected else "left out"
        if part.reused_from:
            mark = f"unchanged since {part.reused_from}, reused: {part.reuse_check}"
        elif part.reuse_check:
            mark = f"captured; {part.reuse_check}"
        lines.append(f"  partition {part.number}: {part.role:<8} {part.fs_type:<9} "
                     f"used {human_size(part.used_bytes)} ({mark})")
    lines += [f"  warning: {warning}" for warning in summary.warnings]
    return "\n".join(lines + damage_report(summary.partitions, summary.disk_unreadable))


def damage_report(partitions: list[CapturedPartition],
                  disk_areas: Sequence[DiskAreaDamage] = ()) -> list[str]:
    """Unreadable bytes per partition and the files they hit, and those of the disk's own
    areas with what a restore does about them (a rescue capture)."""
    lines = disk_area_report(disk_areas)
    for part in partitions:
        if not part.unreadable:
            continue
        lines.append(f"  partition {part.number}: {human_size(part.unreadable_bytes)} "
                     f"unreadable in {len(part.unreadable)} range(s), stored as zeros:")
        for item in part.damaged:
            what = item.path or "(no file)"
            lines.append(f"    {item.kind:<13} {human_size(item.bytes_lost):>9}  {what}"
                         + (f"  - {item.note}" if item.note else ""))
    if lines:
        lines.insert(0, "Complete, with unreadable areas (exit 14): run the same "
                        "`recovery capture --rescue` command again to retry only them.")
    return lines


def disk_area_report(found: Sequence[DiskAreaDamage]) -> list[str]:
    """Unreadable bytes outside every partition: which area, what was there, what a
    restore writes instead."""
    return [f"  disk area {item.area}: {human_size(item.length)} unreadable at byte "
            f"{item.offset}, {item.what}; on restore: {item.restore}" for item in found]


def images(found: list[ImageInfo]) -> str:
    if not found:
        return "No images in this store yet."
    lines = []
    for info in found:
        if info.manifest is None:
            why = f": {info.problem}" if info.problem else ""
            lines.append(f"{info.name}  ({info.state}, started {info.created}){why}")
            continue
        manifest = info.manifest
        parts = ", ".join(f"{p.number}:{p.role}" for p in manifest.captured_partitions)
        checked = info.verified.describe() if info.verified else "not verified yet"
        computer = f"{manifest.computer}  " if manifest.computer else ""
        lines.append(f"{info.name}  {manifest.created}  {computer}{manifest.source.model} "
                     f"(serial {manifest.source.serial or '-'}) "
                     f"{human_size(manifest.source.size)}  partitions {parts}  [{checked}]")
        if manifest.unreadable_bytes:
            lines.append(f"    complete, {manifest.unreadable_bytes} bytes unreadable "
                         f"({human_size(manifest.unreadable_bytes)}, stored as zeros):")
            lines += ["  " + line for line in disk_area_report(manifest.disk_unreadable)]
            lines += [f"      {item.kind:<13} {human_size(item.bytes_lost):>9}  "
                      f"{item.path or '(no file)'}"
                      for part in manifest.partitions for item in part.damaged]
    return "\n".join(lines)


def verify_summary(summary: VerifySummary) -> str:
    where = f" and disk {summary.target}" if summary.target else ""
    whole = (f"complete, {summary.unreadable_bytes} bytes unreadable (zeros in the image, "
             "not checked on the disk); " if summary.unreadable_bytes else "")
    if summary.ok:
        return (f"Image '{summary.image}'{where}: OK, {whole}({summary.chunks_checked} chunks, "
                f"{human_size(summary.bytes_checked)} checked in {summary.seconds:.1f} s)")
    lines = [f"Image '{summary.image}'{where}: {whole}{len(summary.problems)} problem(s):"]
    lines += [f"  - {problem}" for problem in summary.problems]
    return "\n".join(lines)


def restore_plan(plan: RestorePlan) -> str:
    target = plan.target
    numbers = ", ".join(str(n) for n in plan.partitions)
    lines = [f"Restore '{plan.manifest.name}' onto {target.node}: {target.describe()} "
             f"[{plan.identity.stable_id}]", f"Image partitions to write: {numbers}",
             "This will overwrite:"]
    lines += [f"  partition {p.number}: {human_size(p.size)} {p.fs_type or '-'} "
              f"{p.fs_label} {p.part_name}".rstrip() for p in target.partitions] \
        or ["  (no partitions found on it)"]
    lines += layout_lines(plan)
    lines += layout_bars(plan)
    if target.health.needs_care:
        lines.append(f"target health: {target.health.describe()}")
    lines += [f"refused: {r.title} {cli_action(r)}" for r in plan.refusals]
    return "\n".join(lines)


def layout_verdict(plan: RestorePlan) -> str:
    """'Windows will be shrunk to 480.0 MB' when the restore resizes it, else ''."""
    resized = plan.layout.resized if plan.layout else None
    if resized is None:
        return ""
    return f"Windows will be {resized.action()} to {human_size(resized.new_size)}"


def layout_lines(plan: RestorePlan) -> list[str]:
    """The plan's layout as a table: each partition old -> new start and size, and why."""
    layout = plan.layout
    if layout is None:
        return []
    resized = layout.resized
    if resized is not None:
        head = (f"New layout: Windows {resized.action()} to {human_size(resized.new_size)} "
                f"to fit the {human_size(layout.table.disk_size)} disk:")
    elif layout.mode == "same":
        head = "Layout: the image's, unchanged (every start and size as captured):"
    else:
        head = "New layout:"
    roles = {p.number: p.role for p in plan.manifest.partitions}
    lines = [head]
    for change in layout.changes:
        start = human_size(change.old_start)
        if change.moved:
            start += f" -> {human_size(change.new_start)}"
        size = human_size(change.old_size)
        if change.resized:
            size += f" -> {human_size(change.new_size)}"
        lines.append(f"  {change.number} {roles.get(change.number, '-'):<8} "
                     f"start {start:<20} size {size:<20} {change.action()}")
    lines.append(f"  BCD: {plan.bcd_update()}")
    return lines


def layout_bars(plan: RestorePlan, width: int = 60) -> list[str]:
    """A picture of the disk before and after, to one scale: a digit per partition,
    '.' for unallocated space."""
    if plan.layout is None:
        return []
    before, after = plan.manifest.table, plan.layout.table
    scale = max(before.disk_size, after.disk_size) / width

    def bar(table: PartitionTable) -> str:
        cells = ["."] * max(1, round(table.disk_size / scale))
        taken = 0  # every partition keeps at least one cell, however small
        for part in sorted(table.data_partitions(), key=lambda p: p.start):
            first = max(int(part.start / scale), taken)
            last = max(first + 1, round(part.end / scale))
            cells[first:last] = str(part.number)[-1] * (last - first)
            taken = last
        return "[" + "".join(cells) + "]"

    return [f"  before {bar(before)} {human_size(before.disk_size)}",
            f"  after  {bar(after)} {human_size(after.disk_size)}"]


def restore_summary(summary: RestoreSummary) -> str:
    verified = "verified by read-back" if summary.verified else "NOT verified"
    unreadable = (f"\nWarning: {summary.unreadable_bytes} bytes were unreadable on the source "
                  "disk and are zeros on the target ('recovery images' lists the damaged "
                  "files); run chkdsk /f in Windows." if summary.unreadable_bytes else "")
    return (f"Restored '{summary.image}' onto {summary.target} in {summary.seconds:.1f} s: "
            f"{human_size(summary.bytes_written)} written, {summary.chunks_written} chunks "
            f"written, {summary.chunks_skipped} already right; {verified}.{unreadable}")
