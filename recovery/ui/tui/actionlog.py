"""The technician's log: every action and its outcome, in a file that can go to the store.

Technicians attach this file to tickets, so it is plain text with one line per fact and a
UTC timestamp; it is written as things happen so a crash or power loss keeps what was done.
It is also a logging handler on the "recovery" logger while the TUI runs, so every tool's
command line and error output (recovery.sys.run logs them) is in it: an error that says
"see the log" means this file.
"""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

from recovery.errors import RecoveryError, StoreError
from recovery.ui.tui.wording import tui_action

DEFAULT_LOG_DIR = Path("/var/log/recovery")
LOGGER = "recovery"


class ActionLog(logging.Handler):
    def __init__(self, path: Path, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.path = path
        self._file_lock = threading.Lock()
        self._before = (logging.NOTSET, True)  # the logger's level and propagation
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    @classmethod
    def default(cls) -> ActionLog:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return cls(DEFAULT_LOG_DIR / f"tui-{stamp}.log")

    def write(self, message: str, level: str = "info") -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        # Continuation lines (a tool's stderr, a traceback) stay readable under their line.
        text = message.rstrip("\n").replace("\n", "\n    ")
        with self._file_lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {level:<7} {text}\n")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self.write(f"{record.name.removeprefix('recovery.')}: {message}",
                       record.levelname.lower())
        except Exception:  # a log line must never take the console down
            self.handleError(record)

    def attach(self, verbose: bool = False) -> None:
        """Receive the program's log records (tools' command lines and stderr; with
        `verbose`, their stdout and the engine's debug notes too)."""
        logger = logging.getLogger(LOGGER)
        self._before = (logger.level, logger.propagate)
        self.setLevel(logging.DEBUG if verbose else logging.INFO)
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        # Never to stderr: that is the console the TUI draws on.
        logger.propagate = False
        logger.addHandler(self)

    def detach(self) -> None:
        logger = logging.getLogger(LOGGER)
        logger.removeHandler(self)
        logger.level, logger.propagate = self._before

    def error(self, error: RecoveryError) -> None:
        self.write(f"[{error.code} {error.kind}] {error.title} {tui_action(error)}".strip(),
                   "error")

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")

    def save_to_store(self, store: Path) -> Path:
        """Copy the log into STORE/logs/ (kept beside the images it talks about)."""
        target_dir = store / "logs"
        target = target_dir / self.path.name
        try:
            target_dir.mkdir(exist_ok=True)
            with self._file_lock:
                shutil.copyfile(self.path, target)
        except OSError as exc:
            raise StoreError(f"Could not save the log to {target_dir}: {exc.strerror}.",
                             "Check that the store drive is mounted read-write and not full."
                             ) from exc
        self.write(f"log saved to {target}")
        return target
