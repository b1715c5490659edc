"""`recovery delete` and `recovery prune`: remove images and reclaim unused chunks.

Both take the store's exclusive lock (recovery.store.locks): they wait up to --wait seconds
for the jobs using the store to finish and are refused, naming those jobs, after that.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from recovery.errors import NotConfirmedError
from recovery.events import EventSink
from recovery.store.objects import ChunkStore
from recovery.ui.cli_netstore import add_store_argument
from recovery.ui.render import print_json
from recovery.units import human_size

Handler = Callable[[argparse.Namespace, EventSink], int]
def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    delete = commands.add_parser("delete", help="delete an image (its chunks stay until "
                                 "'prune')")
    add_store_argument(delete)
    delete.add_argument("name", help="image name (complete, incomplete or damaged)")
    delete.add_argument("--yes", action="store_true", help="confirm deleting the image")
    _common(delete, cmd_delete)
    prune = commands.add_parser("prune", help="delete the chunks no image uses any more")
    add_store_argument(prune)
    _common(prune, cmd_prune)


def _common(parser: argparse.ArgumentParser, handler: Handler) -> None:
    parser.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for jobs using the store (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=handler)


def cmd_delete(args: argparse.Namespace, events: EventSink) -> int:
    store = ChunkStore.open(args.store)
    if not args.yes:
        if not _listed(store, args.name):
            store.load_image(args.name)  # ImageNotFoundError listing the images there
        raise NotConfirmedError(f"Deleting image {args.name} from {args.store} needs "
                                "confirmation.", "Run the same command with --yes.")
    store.remove_image(args.name, wait_seconds=args.wait)
    if args.json:
        print_json({"ok": True, "deleted": args.name, "store": str(args.store)})
    else:
        print(f"Deleted image {args.name}; run 'recovery prune' to free its unused chunks.")
    return 0


def cmd_prune(args: argparse.Namespace, events: EventSink) -> int:
    report = ChunkStore.open(args.store).collect_garbage(wait_seconds=args.wait)
    if args.json:
        print_json({"ok": True, "store": str(args.store), **report.to_dict()})
    else:
        print(f"Removed {report.chunks_removed} unused chunks "
              f"({human_size(report.bytes_freed)}), kept {report.chunks_kept}.")
    return 0


def _listed(store: ChunkStore, name: str) -> bool:
    return any(info.name == name for info in store.list_images())
