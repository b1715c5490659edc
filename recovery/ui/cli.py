"""The `recovery` command line: translates arguments into engine calls, renders events."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("recovery: not implemented yet", file=sys.stderr)
    return 1
