"""The `recovery` command.

`recovery tui` goes straight to the TUI, which draws its first screen before it loads the
engine; importing the CLI first would load capture, restore and verify up front. On the live
image (a cold squashfs, often an old PC or a TCG guest) that is seconds of a blank console.
"""

from __future__ import annotations

import gc
import sys


def tui_arguments(args: list[str]) -> list[str] | None:
    """The TUI's own arguments when `args` start the TUI (`tui ...`, `--verbose tui ...`),
    else None: every way into `recovery tui` takes this one route."""
    verbose = False
    while args[:1] in (["--verbose"], ["-v"]):
        verbose, args = True, args[1:]
    if args[:1] != ["tui"]:
        return None
    return [*args[1:], *(["--verbose"] if verbose else [])]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    tui_args = tui_arguments(list(args))
    if tui_args is not None:
        # No garbage collection until the first frame is drawn (HomeScreen.start_workers):
        # the start-up makes few cycles, and each collection walked all of Textual's new
        # objects again, 8% of the start's CPU time, a few tenths of a second under TCG.
        gc.disable()
        from recovery.ui.tui.app import run_tui
        return run_tui(tui_args)
    from recovery.ui.cli import main as cli_main
    return cli_main(argv)
