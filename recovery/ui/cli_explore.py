"""`recovery files|extract|mount|unmount|diff`: open an image without restoring it.

Translates arguments into recovery.engine.explore / extract and
recovery.sys.imagefs calls and renders the results
as text or one JSON document; errors are rendered by recovery.ui.cli.main.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from recovery.engine.explore import ImageDiff, diff_images, list_files
from recovery.engine.extract import ExtractRequest, ExtractSummary, extract
from recovery.errors import ImageDamagedError, UsageError
from recovery.events import EventSink
from recovery.fs.browse import FileEntry
from recovery.ui.cli_netstore import add_store_argument
from recovery.ui.render import print_json
from recovery.units import human_size

Handler = Callable[[argparse.Namespace, EventSink], int]



def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the image-browsing commands to the `recovery` parser."""
    files = _image_command(commands, "files", "list a folder of a captured partition",
                           cmd_files)
    files.add_argument("path", nargs="?", default="/", help="folder or file (default: /)")
    files.set_defaults(late_positionals="path")

    ext = _image_command(commands, "extract", "copy files and folders out of an image",
                         cmd_extract)
    ext.add_argument("paths", nargs="*", metavar="PATH", help="files or folders, e.g. "
                     "/Users/Bob/Documents")
    ext.set_defaults(late_positionals="paths")
    ext.add_argument("--to", type=Path, required=True, metavar="DIR",
                     help="existing folder to copy into")

    mnt = _image_command(commands, "mount", "mount a captured partition read-only",
                         cmd_mount)
    mnt.add_argument("mountpoint", type=Path)
    mnt.set_defaults(late_positionals="mountpoint")

    umnt = commands.add_parser("unmount", help="unmount what `recovery mount` mounted")
    umnt.add_argument("mountpoint", type=Path)
    _json_flag(umnt).set_defaults(handler=cmd_unmount)

    diff = commands.add_parser("diff", help="files added, removed and changed between two "
                               "images of the same PC")
    add_store_argument(diff)
    diff.add_argument("old", help="the older image")
    diff.add_argument("new", help="the newer image")
    diff.add_argument("--partition", type=int, help="partition number (default: Windows)")
    _json_flag(diff).set_defaults(handler=cmd_diff)


def _image_command(commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                   help_text: str, handler: Handler) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    add_store_argument(parser)
    parser.add_argument("name", help="image name")
    parser.add_argument("--partition", type=int,
                        help="partition number (default: the Windows volume)")
    _json_flag(parser).set_defaults(handler=handler)
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def entry_line(entry: FileEntry) -> str:
    size = "<folder>" if entry.is_dir else human_size(entry.size)
    flags = ",".join(entry.attributes)
    extra = f" -> {entry.link_target}" if entry.link_target else ""
    streams = f" (+{len(entry.streams)} stream{'s' * (len(entry.streams) > 1)})" \
        if entry.streams else ""
    return f"{entry.modified or '-':<20} {size:>10}  {entry.name}{extra}{streams}" + \
        (f"  [{flags}]" if flags else "")


def cmd_files(args: argparse.Namespace, events: EventSink) -> int:
    listing = list_files(args.store, args.name, args.partition, args.path)
    if args.json:
        print_json(listing.to_dict())
        return 0
    print(f"{listing.entry.path} on {listing.where}:")
    for entry in listing.entries:
        print("  " + entry_line(entry))
    if not listing.entries:
        print("  (empty)")
    return 0


def extract_text(summary: ExtractSummary) -> str:
    lines = [f"Extracted {summary.files} files and {summary.folders} folders "
             f"({human_size(summary.bytes)}) from partition {summary.partition} of "
             f"{summary.image} to {summary.destination} in {summary.seconds:.1f} s."]
    for item in summary.renamed:
        lines.append(f"  renamed: {item['path']} -> {item['written_as']}")
    for item in summary.streams_as_files:
        lines.append(f"  stream as a file: {item['path']} -> {item['written_as']}")
    for item in summary.skipped:
        lines.append(f"  skipped: {item['path']} ({item['reason']})")
    for item in summary.failed:
        lines.append(f"  FAILED: {item['problem']}")
    return "\n".join(lines)


def cmd_extract(args: argparse.Namespace, events: EventSink) -> int:
    if not args.paths:
        raise UsageError("Name at least one file or folder to extract.",
                         "e.g. recovery extract --store S NAME /Users/Bob/Documents --to DIR")
    request = ExtractRequest(args.store, args.name, tuple(args.paths), args.to,
                             args.partition)
    summary = extract(request, events)
    if args.json:
        print_json(summary.to_dict())
    else:
        print(extract_text(summary))
    return 0 if summary.ok else ImageDamagedError.code


def cmd_mount(args: argparse.Namespace, events: EventSink) -> int:
    from recovery.sys import imagefs

    mounted = imagefs.mount_image(args.store, args.name, args.partition,
                                  Path(args.mountpoint))
    if args.json:
        print_json({"ok": True, **mounted.to_dict()})
    else:
        print(f"Mounted {mounted.where} read-only on {mounted.mountpoint} "
              f"({mounted.fs_type}). Unmount with: recovery unmount {mounted.mountpoint}")
    return 0


def cmd_unmount(args: argparse.Namespace, events: EventSink) -> int:
    from recovery.sys import imagefs

    mounted = imagefs.unmount_image(args.mountpoint)
    if args.json:
        print_json({"ok": True, **mounted.to_dict()})
    else:
        print(f"Unmounted {mounted.where} from {mounted.mountpoint}.")
    return 0


def diff_text(diff: ImageDiff, limit: int = 200) -> str:
    lines = [f"Partition {diff.partition}, {diff.old} -> {diff.new}: {len(diff.added)} "
             f"added, {len(diff.removed)} removed, {len(diff.changed)} changed."]
    rows = [("+", e.path, e) for e in diff.added] + \
        [("-", e.path, e) for e in diff.removed] + \
        [("~", new.path, new) for _, new in diff.changed]
    for mark, path, entry in sorted(rows, key=lambda r: r[1])[:limit]:
        size = "" if entry.is_dir else f"  {human_size(entry.size)}"
        lines.append(f"  {mark} {path}{'/' if entry.is_dir else ''}{size}")
    if len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more (see --json)")
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace, events: EventSink) -> int:
    diff = diff_images(args.store, args.old, args.new, args.partition)
    if args.json:
        print_json(diff.to_dict())
    else:
        print(diff_text(diff))
    return 0
