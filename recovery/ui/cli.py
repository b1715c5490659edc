"""The `recovery` command line: translates arguments into engine calls and renders events.

Every command prints one JSON document on stdout with --json (for scripts and the
unattended mode), or progress bars on stderr and a short summary otherwise. The exit
status is 0 only on full success, else the error's code (README: "Exit codes").
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from recovery import __version__
from recovery.engine.capture import (
    DEFAULT_CHUNK_SIZE,
    CaptureRequest,
    execute_capture,
    plan_capture,
)
from recovery.engine.disks import disks_holding, list_disks
from recovery.engine.health import with_health
from recovery.engine.rescue import RescueOptions
from recovery.engine.resize import LayoutChoice
from recovery.engine.restore import RestoreRequest, execute_restore, plan_restore
from recovery.engine.roles import parse_partitions
from recovery.engine.verify import verify
from recovery.errors import (
    CancelledError,
    NotConfirmedError,
    RecoveryError,
    UnreadableAreasError,
    UsageError,
    VerificationError,
)
from recovery.events import EventSink, discard
from recovery.store.objects import ChunkStore
from recovery.sys.joblock import machine_job
from recovery.ui import text
from recovery.ui.cli_explore import register as register_explore
from recovery.ui.cli_netstore import add_store_argument, register_network, store_for_job
from recovery.ui.cli_restore_points import register as register_restore_points
from recovery.ui.cli_store import register as register_store_commands
from recovery.ui.render import ProgressRenderer, print_error, print_json
from recovery.units import parse_size

Handler = Callable[[argparse.Namespace, EventSink], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recovery", description="Capture, restore and verify Windows disks; roll back "
        "registry hives offline.")
    parser.add_argument("--version", action="version", version=f"recovery {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every tool call")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    disks = commands.add_parser("disks", help="list whole disks")
    disks.add_argument("--store", type=Path, help="also say which disk holds this store path")
    _json_flag(disks).set_defaults(handler=cmd_disks)

    cap = commands.add_parser("capture", help="capture a disk into an image store")
    cap.add_argument("source", type=Path, help="whole disk (/dev/sda) or raw disk-image file")
    add_store_argument(cap)
    cap.add_argument("--name", help="image name (default: model and date)")
    cap.add_argument("--partitions", default="all", metavar="ROLE|NUMBER,...|all",
                     help="roles (boot,reserved,system,data,unknown) and/or partition "
                     "numbers to capture (default all)")
    cap.add_argument("--read-all", action="store_true",
                     help="read every used block, even of NTFS volumes unchanged since an "
                     "earlier image (by default their chunks are reused after a spot check)")
    cap.add_argument("--rescue", action="store_true",
                     help="failing disk: keep going past unreadable sectors (stored as zeros, "
                     "listed in the image with the files they hit; exit 14); run it again "
                     "to retry only what is still unread")
    cap.add_argument("--retry-passes", type=int, default=RescueOptions.retry_passes,
                     metavar="N", help="--rescue: single-sector passes over what still fails "
                     f"(default {RescueOptions.retry_passes})")
    cap.add_argument("--rescue-time", type=float, default=0.0, metavar="SECONDS",
                     help="--rescue: stop retrying after this long (default: no limit)")
    cap.add_argument("--slow-read", type=float, default=RescueOptions.slow_read_seconds,
                     metavar="SECONDS", help="--rescue: a read slower than this skips ahead, "
                     f"the area is read last (default {RescueOptions.slow_read_seconds:g})")
    cap.add_argument("--chunk-size", type=parse_size, default=DEFAULT_CHUNK_SIZE,
                     help=argparse.SUPPRESS)
    _json_flag(cap).set_defaults(handler=cmd_capture)

    images = commands.add_parser("images", help="list the images in a store")
    add_store_argument(images)
    images.add_argument("--computer", metavar="NAME", help="only images of this Windows "
                        "computer name (case-insensitive; * and ? match any characters)")
    _json_flag(images).set_defaults(handler=cmd_images)

    ver = commands.add_parser("verify", help="check an image, and optionally a disk against it")
    add_store_argument(ver)
    ver.add_argument("name", help="image name")
    ver.add_argument("--target", type=Path, help="also compare this disk with the image")
    _json_flag(ver).set_defaults(handler=cmd_verify)

    res = commands.add_parser("restore", help="restore an image onto a whole disk")
    add_store_argument(res)
    res.add_argument("name", help="image name")
    res.add_argument("target", type=Path, help="whole disk or raw disk-image file to overwrite")
    res.add_argument("--delta", action="store_true",
                     help="write only the chunks that differ (also resumes a restore)")
    res.add_argument("--yes", action="store_true", help="confirm overwriting the target")
    res.add_argument("--plan-only", action="store_true",
                     help="show the plan (new layout, what moves, what is resized) and stop; "
                     "nothing is written")
    res.add_argument("--layout", choices=("fit", "same"),
                     help="fit: shrink or grow Windows to the target (default when the sizes "
                     "differ); same: keep every partition's exact start and size")
    res.add_argument("--system-size", type=parse_size, metavar="SIZE",
                     help="new size of the Windows partition, e.g. 200G (implies fit)")
    res.add_argument("--allow-failing-target", action="store_true",
                     help="restore even when the target's SMART health says it is failing")
    _json_flag(res).set_defaults(handler=cmd_restore)

    demo = commands.add_parser("demo", help="build a Windows-like disk and run every job on it")
    demo.add_argument("--workdir", type=Path, help="where to put the demo files (default: tmp)")
    _json_flag(demo).set_defaults(handler=cmd_demo)

    tui = commands.add_parser("tui", help="start the full-screen interface (options are "
                              "passed on: --store PATH, --log FILE, --udev-record FILE)",
                              add_help=False)
    tui.set_defaults(handler=cmd_tui, json=False)
    register_store_commands(commands)
    register_network(commands)
    register_restore_points(commands)
    register_explore(commands)
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "tui":
        args.tui_args = extra  # the TUI parses its own options
    elif extra and str(getattr(args, "late_positionals", "")) and not any(
            e.startswith("-") for e in extra):
        # argparse stops filling positionals at the first option: `files NAME
        # --partition 1 PATH` leaves PATH over; it belongs to the command's last positional.
        name = args.late_positionals
        current = getattr(args, name)
        setattr(args, name, [*current, *extra] if isinstance(current, list) else extra[-1])
        if not isinstance(current, list) and len(extra) > 1:
            parser.error(f"unrecognized arguments: {' '.join(extra[:-1])}")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    as_json = bool(getattr(args, "json", False))
    try:
        if as_json or not sys.stderr.isatty():
            with store_for_job(args, discard):
                return handler(args, discard)
        with ProgressRenderer() as renderer, store_for_job(args, renderer):
            return handler(args, renderer)
    except KeyboardInterrupt:
        print_error(CancelledError("Stopped by Ctrl-C.", "Nothing half-done is shown as "
                                   "complete; run the same command again to continue."),
                    as_json)
        return CancelledError.code
    except RecoveryError as error:
        print_error(error, as_json)
        return error.code


def cmd_disks(args: argparse.Namespace, events: EventSink) -> int:
    disks = with_health(list_disks())
    holders = {d.node for d in disks_holding(args.store, disks)} if args.store else set()
    if args.json:
        print_json({"disks": [{**disk.to_dict(), "holds_store": disk.node in holders}
                              for disk in disks]})
    else:
        print(text.disks(disks, holders))
    return 0


def cmd_capture(args: argparse.Namespace, events: EventSink) -> int:
    if args.retry_passes < 0 or args.rescue_time < 0 or args.slow_read <= 0:
        raise UsageError("--retry-passes and --rescue-time cannot be negative, and --slow-read "
                         "must be more than 0.", "Give for example --retry-passes 2 "
                         "--rescue-time 600 --slow-read 5.")
    options = RescueOptions(retry_passes=args.retry_passes, time_limit=args.rescue_time,
                            slow_read_seconds=args.slow_read)
    roles, numbers = parse_partitions(args.partitions)
    request = CaptureRequest(source=args.source, store=args.store, name=args.name,
                             roles=roles, numbers=numbers, chunk_size=args.chunk_size,
                             read_all=args.read_all, rescue=args.rescue,
                             rescue_options=options)
    with machine_job(f"capture of {args.source}", [args.source]):
        plan = plan_capture(request)
        if not args.json:
            print(text.capture_plan(plan), flush=True)
        if plan.refusals:
            raise plan.refusals[0]
        summary = execute_capture(plan, events)
    if args.json:
        print_json({"ok": True, "plan": plan.to_dict(), **summary.to_dict()})
    else:
        print(text.capture_summary(summary))
    # The image is complete as far as the disk allowed: not an error, but not whole either.
    return UnreadableAreasError.code if summary.unreadable_bytes else 0


def cmd_images(args: argparse.Namespace, events: EventSink) -> int:
    images = ChunkStore.open(args.store).list_images()
    if args.computer:
        images = [image for image in images if image.matches_computer(args.computer)]
    if args.json:
        print_json({"store": str(args.store), "images": [i.to_dict() for i in images]})
    else:
        print(text.images(images) if images or not args.computer else
              f"No images of computer {args.computer} in this store.")
    return 0


def cmd_verify(args: argparse.Namespace, events: EventSink) -> int:
    if args.target is None:
        summary = verify(args.store, args.name, None, events)
    else:
        with machine_job(f"verification of {args.target} against image {args.name}",
                         [args.target]):
            summary = verify(args.store, args.name, args.target, events)
    if args.json:
        print_json(summary.to_dict())
    else:
        print(text.verify_summary(summary))
    return 0 if summary.ok else VerificationError.code


def cmd_restore(args: argparse.Namespace, events: EventSink) -> int:
    choice = LayoutChoice(mode=args.layout, system_size=args.system_size)
    request = RestoreRequest(store=args.store, image=args.name, target=args.target,
                             delta=args.delta, confirmed=args.yes, layout=choice,
                             allow_failing_target=args.allow_failing_target)
    # A confirmed restore is a job from its plan on: no other job may come in between.
    job = (machine_job(f"restore of image {args.name} to {args.target}", [args.target])
           if args.yes and not args.plan_only else contextlib.nullcontext())
    with job:
        plan = plan_restore(request)
        if args.plan_only:
            blocking = [r for r in plan.refusals if not isinstance(r, NotConfirmedError)]
            if args.json:
                print_json({"ok": not blocking, "plan_only": True, **plan.to_dict()})
            else:
                print(text.restore_plan(plan))
            return blocking[0].code if blocking else 0
        if not args.yes or plan.refusals:
            if not args.json:
                print(text.restore_plan(plan))
            blocking = [r for r in plan.refusals if not isinstance(r, NotConfirmedError)]
            raise (blocking or plan.refusals)[0]
        if plan.layout is not None and plan.layout.mode == "fit":
            # Shown before anything is written; with --json on stderr, which an unattended
            # job shows on its consoles, so stdout holds only the JSON document.
            print("\n".join(text.layout_lines(plan) + text.layout_bars(plan)), flush=True,
                  file=sys.stderr if args.json else sys.stdout)
        summary = execute_restore(plan, events)
    if args.json:
        print_json({"ok": True, "plan": plan.to_dict(), **summary.to_dict()})
    else:
        print(text.restore_summary(summary))
    return 0


def cmd_demo(args: argparse.Namespace, events: EventSink) -> int:
    from recovery.demo.run import run_demo

    report = run_demo(args.workdir, events)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.text())
    return 0 if report.ok else 1


def cmd_tui(args: argparse.Namespace, events: EventSink) -> int:
    # recovery.ui.entry starts the TUI before this parser loads; this is only reached when
    # cli.main is called directly, and ends where entry's route ends (not through entry,
    # which loads this module: no import cycle).
    from recovery.ui.tui.app import run_tui

    return run_tui([*args.tui_args, *(["--verbose"] if args.verbose else [])])
