"""`recovery tui`: the technician's console front end over the engine.

The app owns the Backend (the door to the engine), the action log and the machine-level
actions (shell, reboot, power off); screens do the rest.

The Backend, and with it the engine, is loaded on first use, from the home screen's device
worker: the first screen is on the console before the engine's imports run (on a live image
under a slow CPU those are seconds).

Quitting while a job runs would leave the engine thread writing to a disk with no console
to show it: quit asks first, cancels the job and leaves only once the engine has stopped.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual._path import CSSPathType
from textual.app import App
from textual.binding import Binding
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

from recovery.errors import RecoveryError
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.screens.home import HomeScreen

if TYPE_CHECKING:
    # Dialogs and the job screen load when first shown: the first frame does not wait for
    # their modules (tests/tui/test_start_imports.py).
    from recovery.ui.tui.backend import Backend
    from recovery.ui.tui.screens.job import JobScreen
    from recovery.ui.tui.tuiapp import TuiApp


class RecoveryApp(App[int]):
    CSS_PATH: ClassVar[CSSPathType | None] = "app.tcss"
    TITLE = "recovery"
    SUB_TITLE = "capture · restore · verify · restore points"
    ENABLE_COMMAND_PALETTE = False
    HEADER_ICON = "⭘"
    PLAIN_TICK_BOXES = False

    def __init__(self, backend: Backend | Callable[[], Backend] | None = None,
                 log: ActionLog | None = None, verbose: bool = False) -> None:
        # The Linux console has 16 colours: use the terminal's own palette, not truecolor.
        super().__init__(ansi_color=True)
        self._backend = backend if not callable(backend) else None
        self._make_backend = backend if callable(backend) else _default_backend
        self._backend_lock = threading.Lock()
        self.log_file = log or ActionLog.default()
        self.verbose = verbose

    @property
    def backend(self) -> Backend:
        with self._backend_lock:  # the device worker and the UI thread may both ask first
            if self._backend is None:
                self._backend = self._make_backend()
            return self._backend

    def close_backend(self) -> None:
        with self._backend_lock:
            if self._backend is not None:
                self._backend.close()

    def on_mount(self) -> None:
        self.log_file.attach(self.verbose)
        self.log_file.write("recovery tui started")
        self.push_screen(HomeScreen())

    def on_unmount(self) -> None:
        self.log_file.detach()

    def show_error(self, error: RecoveryError) -> None:
        from recovery.ui.tui.screens.dialogs import ErrorDialog
        self.log_file.error(error)
        self.push_screen(ErrorDialog(error))

    def running_job(self) -> JobScreen[object] | None:
        """The job screen whose engine thread has not returned yet."""
        from recovery.ui.tui.screens.job import JobScreen
        for screen in reversed(self.screen_stack):
            if isinstance(screen, JobScreen) and screen.running:
                return screen
        return None

    async def action_quit(self) -> None:
        """Ctrl+Q and q: leave at once when idle; during a job, ask, cancel the job and
        leave when the engine has stopped (JobScreen.quit_when_done)."""
        job = self.running_job()
        if job is None:
            self.exit()
            return
        if job.quit_when_done:
            return  # asked and answered already; the job is stopping
        from recovery.ui.tui.screens.dialogs import ConfirmDialog

        def answered(stop: bool | None) -> None:
            if stop and job.running:
                self.log_file.write(f"quit requested during the {job.what}: cancelling it")
                job.stop(quit_after=True)
            elif stop:
                self.exit()
        self.push_screen(ConfirmDialog(
            f"A {job.what} is running. Stop it and quit? What was done so far stays safe; "
            f"the {job.what} will be incomplete. The program leaves once it has stopped.",
            yes_label="Stop and quit"), answered)

    def stop_jobs(self, timeout: float = 600) -> None:
        """Leaving anyway (the process is ending): cancel what runs and wait for it."""
        from recovery.ui.tui.screens.job import JobScreen
        for screen in self.screen_stack:
            if isinstance(screen, JobScreen) and screen.running:
                screen.cancel_event.set()
                screen.finished.wait(timeout)

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


def _implements(app: RecoveryApp) -> TuiApp:
    return app  # mypy checks that RecoveryApp is what screens expect of the app


class ConsoleDriver(LinuxDriver):
    """The Linux console's driver: every character passes the console font's filter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from recovery.ui.tui.console import GlyphFilter, console_font_map
        self.glyphs = GlyphFilter(console_font_map())

    def write(self, data: str) -> None:
        super().write(self.glyphs(data))


class ConsoleRecoveryApp(RecoveryApp):
    """RecoveryApp on TERM=linux: box-drawing borders and keys in words (see console.py)."""

    CSS_PATH: ClassVar[CSSPathType | None] = ["app.tcss", "console.tcss"]
    HEADER_ICON = "*"
    # With 8 text colours Textual's box (half blocks around a coloured cell) is a solid grey
    # cell ticked or not; brackets read as a tick box in any font.
    PLAIN_TICK_BOXES = True

    def get_driver_class(self) -> type[Driver]:
        return ConsoleDriver

    def get_key_display(self, binding: Binding) -> str:
        from recovery.ui.tui.console import KEY_NAMES
        if not binding.key_display and binding.key in KEY_NAMES:
            return KEY_NAMES[binding.key]
        return super().get_key_display(binding)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recovery tui",
                                     description="Full-screen console interface.")
    parser.add_argument("--store", action="append", type=Path, default=[],
                        help="an image store to list even if it is not on a mounted drive")
    parser.add_argument("--log", type=Path, help="log file (default /var/log/recovery/)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also log every tool's output and the engine's debug notes")
    parser.add_argument("--udev-record", type=Path,
                        help="show a recorded machine (JSON from 'python3 -m "
                             "recovery.sys.udev record') instead of this one")
    return parser


def _default_backend() -> Backend:
    from recovery.ui.tui.backend import Backend
    return Backend()


def run_tui(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    log = ActionLog(args.log) if args.log else ActionLog.default()

    def make_backend() -> Backend:
        from recovery.engine.storemounts import StoreMounts
        from recovery.ui.tui.backend import Backend
        if args.udev_record is not None:
            from recovery.sys.udev import RecordedUdev
            return Backend(udev_source=RecordedUdev(args.udev_record),
                           opened_stores=list(args.store))
        return Backend(opened_stores=list(args.store), store_mounts=StoreMounts(log=log.write))

    console = os.environ.get("TERM") == "linux"
    app = (ConsoleRecoveryApp if console else RecoveryApp)(make_backend, log,
                                                           verbose=args.verbose)
    try:
        result = app.run()
    finally:
        gc.enable()  # if it ended before its first frame
        app.stop_jobs()
        app.close_backend()
    return result or 0
