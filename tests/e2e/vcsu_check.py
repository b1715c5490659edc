"""Runs inside the guest (python3 vcsu_check.py TTY [--probe]): every character on a virtual
console's screen must be one its loaded font can draw, in a colour other than its background.

Reads the screen from /dev/vcsuN (one 32-bit code point per cell) and the font's Unicode
map from the kernel with GIO_UNIMAP, the call `getunimap` makes (Debian's kbd does not ship
getunimap). Prints one JSON line: rows, columns, the characters missing from the font with
their count, and the screen text. Independent of the recovery package on purpose.

--probe first writes black-on-black "HID", white-on-white "DEN" and grey "SEEN" over the
top line and reads the screen back in the same process, the moment the console has drawn
it. A read from a second program (python3 starting under TCG takes seconds) was a race
with the TUI's redraws: on BIOS's restore-points screen the probe was gone 0.4-1.9 s after
it was written (home's 2 s poll redrew the screen in front of it; fixed in the TUI, but
any screen may redraw). Written again (up to 5 times) when a redraw came in between;
"probe_seen" says whether the read found it.

--until=TEXT [--seconds=N] [--ready=FILE] watches a screen that changes by itself (a job's
progress): reads it every half second until TEXT is on it (or N seconds, default 600,
passed) and prints every distinct screen seen, with the characters missing or unreadable on
any of them. FILE is created once the first read is done, so the caller can press the key
that starts the job knowing nothing is missed (python3 takes seconds to start under TCG).
"""

from __future__ import annotations

import array
import errno
import fcntl
import glob
import json
import os
import struct
import sys
import time

GIO_UNIMAP = 0x4B66
BLANK = "\u00a0\u2800"  # no-break space, empty braille: nothing to read
PROBE, PROBE_TEXT = ("\0337\033[1;1H\033[30;40mHID\033[37;47mDEN\033[37;40mSEEN\0338",
                     "HIDDENSEEN")


def unimap(tty: str) -> dict[str, int]:
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
            return {chr(entries[2 * i]): entries[2 * i + 1] for i in range(filled)}
    finally:
        os.close(fd)


def framebuffer_console() -> bool:
    """fbcon (UEFI's frame buffer) rather than vgacon (BIOS text mode) draws the consoles."""
    for name in glob.glob("/sys/class/vtconsole/vtcon*/name"):
        with open(name) as text, open(name.replace("/name", "/bind")) as bound:
            if "frame buffer" in text.read() and bound.read().strip() == "1":
                return True
    return False


def colours(attribute: int, glyphs_512: bool, framebuffer: bool) -> tuple[int, int]:
    """(foreground, background) of a cell, as the console draws them.

    With a 512-glyph font vgacon gives the attribute's bright bit to the glyph (8 text
    colours: "bright black" is black); fbcon shifts the attribute up one bit instead."""
    if glyphs_512 and framebuffer:
        return (attribute >> 1) & 0x0F, (attribute >> 5) & 0x07
    if glyphs_512:
        return attribute & 0x07, (attribute >> 4) & 0x07
    return attribute & 0x0F, (attribute >> 4) & 0x07


def read_screen(tty: str) -> dict[str, object]:
    number = tty.rsplit("tty", 1)[1]
    with open(f"/dev/vcsa{number}", "rb") as attributes:
        rows, cols = attributes.read(2)
        attributes.seek(4)
        cells_attributes = attributes.read()[1::2]
    with open(f"/dev/vcsu{number}", "rb") as screen:
        cells = array.array("I", screen.read())
    text = "".join(chr(c) for c in cells)
    font = unimap(tty)
    glyphs_512, framebuffer = max(font.values(), default=0) > 255, framebuffer_console()
    missing: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    for char, attribute in zip(text, cells_attributes, strict=False):
        if char not in font:
            missing[char] = missing.get(char, 0) + 1
        foreground, background = colours(attribute, glyphs_512, framebuffer)
        if not char.isspace() and char not in BLANK and foreground == background:
            unreadable[char] = unreadable.get(char, 0) + 1
    lines = [text[i:i + cols].rstrip() for i in range(0, rows * cols, cols)]
    return {"rows": rows, "cols": cols, "font_size": len(font), "missing": missing,
            "unreadable": unreadable, "glyphs_512": glyphs_512, "framebuffer": framebuffer,
            "text": "\n".join(lines)}


def probed_screen(tty: str, tries: int = 5) -> dict[str, object]:
    for attempt in range(1, tries + 1):
        with open(tty, "w") as console:
            console.write(PROBE)  # returns once the console driver has drawn it
        result = read_screen(tty)
        result["probe_tries"] = attempt
        result["probe_seen"] = PROBE_TEXT in str(result["text"]).split("\n", 1)[0]
        if result["probe_seen"]:
            break
    return result


def watched_screens(tty: str, until: str, seconds: float, ready: str) -> dict[str, object]:
    screens: list[str] = []
    missing: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    end = time.monotonic() + seconds
    while True:
        screen = read_screen(tty)
        text = str(screen["text"])
        if not screens or screens[-1] != text:
            screens.append(text)
            for found, key in ((missing, "missing"), (unreadable, "unreadable")):
                seen = screen[key]
                assert isinstance(seen, dict)
                for char, count in seen.items():
                    found[char] = max(found.get(char, 0), count)
        if ready and not os.path.exists(ready):
            open(ready, "w").close()
        if until in text or time.monotonic() > end:
            return {"screens": screens, "missing": missing, "unreadable": unreadable,
                    "seen": until in text}
        time.sleep(0.5)


def main(argv: list[str]) -> None:
    tty = next((arg for arg in argv if not arg.startswith("--")), "/dev/tty1")
    options = dict(arg[2:].split("=", 1) for arg in argv if "=" in arg)
    if "until" in options:
        print(json.dumps(watched_screens(tty, options["until"],
                                         float(options.get("seconds", 600)),
                                         options.get("ready", ""))))
        return
    print(json.dumps(probed_screen(tty) if "--probe" in argv else read_screen(tty)))


main(sys.argv[1:])
