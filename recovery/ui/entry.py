"""The `recovery` command.

`recovery tui` goes straight to the TUI, which draws its first screen before it loads the
engine; importing the CLI first would load capture, restore and verify up front. On the live
image (a cold squashfs, often an old PC or a TCG guest) that is seconds of a blank console.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["tui"]:
        from recovery.ui.tui.app import run_tui
        return run_tui(args[1:])
    from recovery.ui.cli import main as cli_main
    return cli_main(argv)
