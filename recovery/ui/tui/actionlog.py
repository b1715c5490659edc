"""The technician's log: every action and its outcome, in a file that can go to the store.

Technicians attach this file to tickets, so it is plain text with one line per fact and a
UTC timestamp; it is written as things happen so a crash or power loss keeps what was done.
"""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

from recovery.errors import RecoveryError, StoreError

DEFAULT_LOG_DIR = Path("/var/log/recovery")


class ActionLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    @classmethod
    def default(cls) -> ActionLog:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return cls(DEFAULT_LOG_DIR / f"tui-{stamp}.log")

    def write(self, message: str, level: str = "info") -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {level:<7} {message}\n")

    def error(self, error: RecoveryError) -> None:
        self.write(f"[{error.code} {error.kind}] {error.title} {error.action}".strip(), "error")

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")

    def save_to_store(self, store: Path) -> Path:
        """Copy the log into STORE/logs/ (kept beside the images it talks about)."""
        target_dir = store / "logs"
        target = target_dir / self.path.name
        try:
            target_dir.mkdir(exist_ok=True)
            with self._lock:
                shutil.copyfile(self.path, target)
        except OSError as exc:
            raise StoreError(f"Could not save the log to {target_dir}: {exc.strerror}.",
                             "Check that the store drive is mounted read-write and not full."
                             ) from exc
        self.write(f"log saved to {target}")
        return target
