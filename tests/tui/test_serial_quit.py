"""ctrl+q quits `recovery tui` on a terminal with XON/XOFF flow control on, as a serial
console's line has by default (0x11 is XON: with IXON on, the tty would swallow it).

The real program in a real pseudo-terminal (the machine is a recorded one, so no disk of
this host is looked at); the e2e on the guest's serial console is tests/e2e/test_tui.py.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECORD = REPO / "tests" / "data" / "udev" / "handmade-nvme-sata-usb.json"


def read_until(master: int, text: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not shown within {timeout} s:\n{seen[-2000:]!r}"
        if select.select([master], [], [], min(left, 1.0))[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:  # the program ended and closed the terminal
                break
    return seen


def test_ctrl_q_quits_on_a_terminal_with_xon_xoff(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    assert termios.tcgetattr(slave)[0] & termios.IXON, "a new tty has XON/XOFF on"
    env = {**os.environ, "TERM": "vt220", "COLUMNS": "80", "LINES": "24",
           "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "recovery", "tui", "--udev-record", str(RECORD),
         "--log", str(tmp_path / "tui.log")],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path,
        start_new_session=True)
    try:
        read_until(master, b"Capture", timeout=120)  # the home screen's key line
        # While the TUI runs, 0x11 reaches it: flow control is off on its tty.
        assert not termios.tcgetattr(slave)[0] & termios.IXON
        os.write(master, b"\x11")
        read_until(master, b"\x1b[?1049l", timeout=60)  # the TUI left its screen
        assert process.wait(timeout=60) == 0
        # The terminal is given back as it was.
        assert termios.tcgetattr(slave)[0] & termios.IXON
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
        os.close(slave)
