"""Runs inside the guest (python3 vcsu_check.py TTY): every character on a virtual console's
screen must be one its loaded font can draw.

Reads the screen from /dev/vcsuN (one 32-bit code point per cell) and the font's Unicode
map from the kernel with GIO_UNIMAP, the call `getunimap` makes (Debian's kbd does not ship
getunimap). Prints one JSON line: rows, columns, the characters missing from the font with
their count, and the screen text. Independent of the recovery package on purpose.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import struct
import sys

GIO_UNIMAP = 0x4B66


def unimap(tty: str) -> set[str]:
    fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY)
    count = 512
    try:
        while True:
            entries = array.array("H", bytes(4 * count))
            descriptor = bytearray(struct.pack("HxxxxxxQ", count, entries.buffer_info()[0]))
            try:
                fcntl.ioctl(fd, GIO_UNIMAP, descriptor)
            except OSError as error:
                needed = struct.unpack_from("H", descriptor)[0]
                if error.errno == errno.ENOMEM and needed > count:
                    count = needed
                    continue
                raise
            filled = struct.unpack_from("H", descriptor)[0]
            return {chr(entries[2 * i]) for i in range(filled)}
    finally:
        os.close(fd)


def main(tty: str) -> None:
    number = tty.rsplit("tty", 1)[1]
    with open(f"/dev/vcsa{number}", "rb") as attributes:
        rows, cols = attributes.read(2)
    with open(f"/dev/vcsu{number}", "rb") as screen:
        cells = array.array("I", screen.read())
    text = "".join(chr(c) for c in cells)
    font = unimap(tty)
    missing: dict[str, int] = {}
    for char in text:
        if char not in font:
            missing[char] = missing.get(char, 0) + 1
    lines = [text[i:i + cols].rstrip() for i in range(0, rows * cols, cols)]
    print(json.dumps({"rows": rows, "cols": cols, "font_size": len(font),
                      "missing": missing, "text": "\n".join(lines)}))


main(sys.argv[1] if len(sys.argv) > 1 else "/dev/tty1")
