"""`recovery tui`: the technician's console front end over the engine.

The app owns the Backend (the door to the engine), the action log and the machine-level
actions (shell, reboot, power off); screens do the rest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from textual.app import App

from recovery.errors import RecoveryError
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.dialogs import ErrorDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.storemounts import StoreMounts


class RecoveryApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "recovery"
    SUB_TITLE = "capture · restore · verify · restore points"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, backend: Backend | None = None, log: ActionLog | None = None) -> None:
        # The Linux console has 16 colours: use the terminal's own palette, not truecolor.
        super().__init__(ansi_color=True)
        self.backend = backend or Backend()
        self.log_file = log or ActionLog.default()

    def on_mount(self) -> None:
        self.log_file.write("recovery tui started")
        self.push_screen(HomeScreen())

    def show_error(self, error: RecoveryError) -> None:
        self.log_file.error(error)
        self.push_screen(ErrorDialog(error))

    def open_shell(self) -> None:
        """A root shell on the console; the TUI comes back when it exits."""
        shell = os.environ.get("SHELL", "/bin/bash")
        self.log_file.write(f"shell started: {shell}")
        with self.suspend():
            print("Type 'exit' to return to the recovery menu.", flush=True)
            # Interactive: the shell must own the terminal, so not via sys.run (which
            # captures output).
            code = subprocess.call([shell])
        self.log_file.write(f"shell exited with status {code}")

    def power(self, action: str) -> None:
        self.log_file.write(f"{action} requested")
        try:
            self.backend.power(action)
        except RecoveryError as error:
            self.show_error(error)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recovery tui",
                                     description="Full-screen console interface.")
    parser.add_argument("--store", action="append", type=Path, default=[],
                        help="an image store to list even if it is not on a mounted drive")
    parser.add_argument("--log", type=Path, help="log file (default /var/log/recovery/)")
    parser.add_argument("--udev-record", type=Path,
                        help="show a recorded machine (JSON from 'python3 -m "
                             "recovery.sys.udev record') instead of this one")
    return parser


def run_tui(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    source = None
    if args.udev_record is not None:
        from recovery.sys.udev import RecordedUdev
        source = RecordedUdev(args.udev_record)
    log = ActionLog(args.log) if args.log else ActionLog.default()
    mounts = StoreMounts(log=log.write) if source is None else None
    backend = Backend(udev_source=source, opened_stores=list(args.store), store_mounts=mounts)
    try:
        result = RecoveryApp(backend, log).run()
    finally:
        backend.close()
    return result or 0
