"""`recovery restore-points ...`: list, show, diff, roll back and undo registry restore
points on a Windows volume. Translates arguments into recovery.registry calls and renders
their results as text or one JSON document; errors are rendered by recovery.ui.cli.main.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from recovery.errors import UsageError
from recovery.events import EventSink
from recovery.registry.diff import HiveDiff
from recovery.registry.inspect import PointReport, diff_point, restore_points, show_point
from recovery.registry.points import RestorePoint
from recovery.registry.rollback import (
    RollbackRequest,
    UndoRequest,
    history,
    not_confirmed,
    plan_rollback,
    rollback,
    staging_dir,
    undo,
)
from recovery.registry.undo import UndoRecord
from recovery.sys.joblock import machine_job
from recovery.ui.cli_netstore import add_store_argument
from recovery.ui.render import print_json
from recovery.units import human_size

Handler = Callable[[argparse.Namespace, EventSink], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `restore-points` command group to the `recovery` parser."""
    group = subparsers.add_parser("restore-points", help="registry restore points: list, "
                                  "diff, roll back hives offline, undo")
    commands = group.add_subparsers(dest="points_command", required=True, metavar="ACTION")
    listing = _command(commands, "list", "list restore points, newest first", cmd_list)
    add_store_argument(listing, required=False, purpose="VOLUME is then the name of an "
                       "image in this store (the points inside the captured volume); ")
    _user_flag(listing)
    show = _command(commands, "show", "hives, sizes, validity and diff summary of a point",
                    cmd_show)
    show.add_argument("point", help="point id from 'list'")
    _user_flag(show)
    diff = _command(commands, "diff", "keys and values that differ from a point", cmd_diff)
    diff.add_argument("point")
    diff.add_argument("--hive", required=True, help="SYSTEM, SOFTWARE, SAM, SECURITY, DEFAULT "
                      "or USER_<account>")
    diff.add_argument("--key", help="list every change under this key, e.g. "
                      "ControlSet001\\Services")
    back = _command(commands, "rollback", "put hives back as they were at a point", cmd_rollback)
    back.add_argument("point")
    back.add_argument("--hive", help="comma-separated hives (default: every usable one)")
    back.add_argument("--yes", action="store_true", help="confirm writing to the volume")
    back.add_argument("--undo-copy", type=Path, metavar="DIR",
                      help="also copy the undo record into DIR (e.g. on the image store disk)")
    _user_flag(back)
    und = _command(commands, "undo", "put back what a rollback replaced", cmd_undo)
    und.add_argument("record", nargs="?", help="undo record id (default: the newest)")
    und.add_argument("--yes", action="store_true", help="confirm writing to the volume")
    _command(commands, "history", "list the undo records on the volume", cmd_history)


def _command(commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
             help_text: str, handler: Handler) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    parser.add_argument("volume", type=Path, help="Windows partition, volume image, or whole "
                        "disk (device or image file)")
    parser.add_argument("--partition", type=int, help="partition number on a whole disk")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=handler)
    return parser


def _user_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-hives", action="store_true",
                        help="include each account's NTUSER.DAT as USER_<account>")


def _point_line(point: RestorePoint) -> str:
    hives = ", ".join(f"{n} {c.status}" for n, c in point.hives.items()) or "no hives"
    created = point.created.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"  {point.id:<12} {point.source:<8} {created}  {point.description or '-'}\n" \
           f"  {'':<12} {hives}"


def cmd_list(args: argparse.Namespace, events: EventSink) -> int:
    if args.store is not None:
        from recovery.engine.explore import image_restore_points

        report = image_restore_points(args.store, str(args.volume), args.partition,
                                      args.user_hives)
    else:
        report = restore_points(args.volume, args.partition, args.user_hives)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(f"Restore points on {report.volume.describe()}:")
    for point in report.listing.points:
        print(_point_line(point))
    if not report.listing.points:
        print("  none found")
    for note in report.listing.notes:
        print(f"Note: {note}")
    return 0


def _show_text(report: PointReport) -> str:
    lines = [f"Restore point {report.point.id} on {report.volume.describe()}:",
             _point_line(report.point), "Hives at the point / now:"]
    for name, check in report.point.hives.items():
        now = report.current.get(name)
        now_text = f"{now.status}, {human_size(now.size)}" if now else "missing"
        problem = f" ({check.problem})" if check.problem else ""
        lines.append(f"  {name:<9} point: {check.status}, {human_size(check.size)}{problem}; "
                     f"now: {now_text}")
    if report.health:
        health = report.health
        lines.append(f"Current SYSTEM: {'loadable' if health.check.usable else 'NOT loadable'}"
                     f", status {health.check.status}, current ControlSet "
                     f"{health.current_control_set or '?'}")
    for diff in report.diffs.values():
        lines.append(_diff_summary(diff))
    return "\n".join(lines)


def _diff_summary(diff: HiveDiff) -> str:
    lines = [f"{diff.hive}: changes since the point (added / removed / changed keys):"]
    for top, counts in diff.counts.items():
        lines.append(f"  {top:<28} {counts['added']:>6} {counts['removed']:>6} "
                     f"{counts['changed']:>6}")
    if not diff.counts:
        lines.append("  identical")
    if diff.services_added:
        lines.append("  services/drivers added since: " + _some(diff.services_added))
    if diff.services_removed:
        lines.append("  services/drivers removed since: " + _some(diff.services_removed))
    lines += [f"  warning: {p}" for p in diff.problems]
    return "\n".join(lines)


def _some(names: list[str], limit: int = 20) -> str:
    more = f" and {len(names) - limit} more (see --json)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def cmd_show(args: argparse.Namespace, events: EventSink) -> int:
    report = show_point(args.volume, args.point, args.partition,
                        user_hives=args.user_hives)
    if args.json:
        print_json(report.to_dict())
    else:
        print(_show_text(report))
    return 0


def cmd_diff(args: argparse.Namespace, events: EventSink) -> int:
    diff = diff_point(args.volume, args.point, args.hive, args.key, args.partition)
    if args.json:
        print_json(diff.to_dict())
        return 0
    print(_diff_summary(diff))
    if args.key is not None:
        print(f"Under {args.key} ('added' = created since the point):")
        for change in diff.changes:
            values = f" values: {', '.join(change.values)}" if change.values else ""
            print(f"  {change.change:<8} {change.path}{values}")
    return 0


def _hives(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UsageError("--hive needs at least one hive name.", "e.g. --hive SYSTEM,SOFTWARE")
    return names


def cmd_rollback(args: argparse.Namespace, events: EventSink) -> int:
    request = RollbackRequest(args.volume, args.point, args.partition, _hives(args.hive),
                              args.yes, args.user_hives, args.undo_copy)
    if not args.yes:
        with staging_dir() as staging:
            plan = plan_rollback(request, staging)
        if not args.json:
            print(f"Would replace {', '.join(plan.hives)} (and their logs) on "
                  f"{plan.volume.describe()} with restore point {plan.point.id}; the current "
                  "files and every restore point's hives go into an undo record first.")
        raise (plan.refusals or [not_confirmed(plan)])[0]
    with machine_job(f"rollback of {args.volume} to restore point {args.point}",
                     [args.volume]):
        summary = rollback(request, events)
    if args.json:
        print_json({"ok": True, **summary.to_dict()})
    else:
        print(f"Rolled back to {summary.point}: {', '.join(summary.replaced)} "
              f"({human_size(summary.bytes_written)}), read back and verified.\n"
              f"Undo with: recovery restore-points undo {args.volume} {summary.record}")
    return 0


def cmd_undo(args: argparse.Namespace, events: EventSink) -> int:
    with machine_job(f"undo of a rollback on {args.volume}", [args.volume]):
        summary = undo(UndoRequest(args.volume, args.record, args.partition, args.yes), events)
    if args.json:
        print_json({"ok": True, **summary.to_dict()})
    else:
        print(f"Undid rollback {summary.record} (to {summary.point}): "
              f"{', '.join(summary.restored)} are back as before, verified.")
    return 0


def _record_line(record: UndoRecord) -> str:
    files = ", ".join(Path(f.path).name for f in record.files)
    return f"  {record.id}  {record.state:<8} to {record.point.get('id')}  ({files})"


def cmd_history(args: argparse.Namespace, events: EventSink) -> int:
    records = history(args.volume, args.partition)
    if args.json:
        print_json({"records": [r.to_dict() for r in records]})
        return 0
    print("Rollbacks on this volume (newest first):" if records else "No rollbacks recorded.")
    for record in records:
        print(_record_line(record))
    return 0
