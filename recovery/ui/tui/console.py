"""The Linux text console (TERM=linux): draw only glyphs its font can show.

A console font has at most 512 glyphs; the kernel draws any other character as a filled
box. The live image loads a Terminus font with box drawing, arrows, the ellipsis and dashes
(image-build: setfont in recovery-console), and on the console the TUI

- styles borders with the single and double box-drawing lines every PC font has
  (console.tcss), and names keys in words ("Enter", "Esc");
- reads the font's Unicode map from the kernel (GIO_UNIMAP, what `getunimap` prints) and
  rewrites, as the last step before the terminal, every character the font lacks into a
  fallback of the same width (the list below), or "?" when there is none.

When the map cannot be read (not a virtual console), the kernel's built-in font is
assumed: code page 437.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import re
import struct
from collections.abc import Iterable

GIO_UNIMAP = 0x4B66
_MAX_ENTRIES = 65536

# Nicer glyph -> console-safe fallbacks, best first; each one cell wide like the original.
# Every chain ends in ASCII: the loaded Uni2-Terminus16 lacks some of code page 437 (all
# the half and eighth blocks but the full one), and a scroll bar's thumb edge (▅) was
# drawn as "??" on tty1.
FALLBACKS: dict[str, str] = {
    "…": "~", "—": "-", "\u2013": "-", "·": "-", "•": "*", "⭘": "●*", "●": "*", "○": "o",
    "⏎": "<", "✓": "√+", "✔": "√+", "✗": "x", "✘": "x", "⚠": "!",
    "━": "─-", "╸": "─-", "╺": "─-", "╴": "─-", "╶": "─-", "┃": "│|",
    "┏": "┌+", "┓": "┐+", "┗": "└+", "┛": "┘+",
    "▔": "▀-", "▁": "▄_", "▂": "▄_", "▃": "▄_", "▅": "▄█#", "▆": "█#", "▇": "█#",
    "▊": "▌│|", "▋": "▌│|", "▍": "▌│|", "▎": "▐│|", "▏": "▐│|", "▉": "█#",
    "▌": "│|", "▐": "│|", "▀": "-", "▄": "_", "█": "#",
    "↑": "^", "↓": "v", "←": "<", "→": ">", "⇥": ">", "⌫": "<",
    "│": "|", "─": "-", "┌": "+", "┐": "+", "└": "+", "┘": "+", "├": "+", "┤": "+",
    "┬": "+", "┴": "+", "┼": "+", "║": "|", "═": "=", "╔": "+", "╗": "+", "╚": "+",
    "╝": "+", "╭": "┌+", "╮": "┐+", "╰": "└+", "╯": "┘+",
    "\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u00d7": "x", "≥": ">", "≤": "<",
}
# Keys as words in the footer: the symbols Textual uses (⏎, ↑, ⇥...) are not in the fonts.
KEY_NAMES: dict[str, str] = {
    "enter": "Enter", "escape": "Esc", "tab": "Tab", "space": "Space", "up": "Up",
    "down": "Down", "left": "Left", "right": "Right", "backspace": "Bksp", "delete": "Del",
}
_NON_ASCII = re.compile(r"[^\x00-\x7e]")


def cp437() -> frozenset[str]:
    """The characters of the kernel's built-in VGA font."""
    return frozenset(bytes(range(32, 256)).decode("cp437")) | frozenset(
        chr(c) for c in range(32, 127))


def font_map(fd: int) -> frozenset[str]:
    """The characters the console on `fd` can draw, from the kernel (GIO_UNIMAP).

    Raises OSError when `fd` is not a virtual console."""
    count = 512
    while True:
        entries = array.array("H", bytes(4 * count))
        address, _ = entries.buffer_info()
        # struct unimapdesc { unsigned short entry_ct; struct unipair *entries; }
        descriptor = bytearray(struct.pack("HxxxxxxQ", count, address))
        try:
            fcntl.ioctl(fd, GIO_UNIMAP, descriptor)
        except OSError as error:
            needed = struct.unpack_from("H", descriptor)[0]
            if error.errno == errno.ENOMEM and count < needed <= _MAX_ENTRIES:
                count = needed
                continue
            raise
        filled = struct.unpack_from("H", descriptor)[0]
        return frozenset(chr(entries[2 * i]) for i in range(filled))


def console_font_map(path: str = "/dev/tty") -> frozenset[str]:
    """The font map of the console we are on, or code page 437 when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return cp437()
    try:
        return font_map(fd) or cp437()
    except OSError:
        return cp437()
    finally:
        os.close(fd)


class GlyphFilter:
    """Rewrites text for a font that has exactly `available` (one cell stays one cell)."""

    def __init__(self, available: Iterable[str]) -> None:
        self.available = frozenset(available)
        self._cache: dict[str, str] = {}

    def substitute(self, char: str) -> str:
        known = self._cache.get(char)
        if known is not None:
            return known
        if char in self.available:
            result = char
        else:
            result = next((c for c in FALLBACKS.get(char, "") if c in self.available), "")
            if not result:
                from rich.cells import cell_len
                result = "?" * max(cell_len(char), 1) if cell_len(char) else ""
        self._cache[char] = result
        return result

    def __call__(self, text: str) -> str:
        if text.isascii():
            return text
        return _NON_ASCII.sub(lambda match: self.substitute(match.group()), text)

    def missing(self, text: str) -> set[str]:
        """Characters of `text` the font lacks (before any rewriting)."""
        return {c for c in _NON_ASCII.findall(text) if c not in self.available}
