"""The action log on screen, and saving it to an image store for the ticket.

The file has a date, time and level on every line (for the ticket); on an 80-column console
that left 52 columns and the rest of a line was cut off. On screen: the date once, each entry
as its time and the message wrapped under itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, RichLog

from recovery.engine.storescan import StoreLocation
from recovery.errors import RecoveryError
from recovery.ui.tui.screens.dialogs import PathPrompt
from recovery.ui.tui.tuiapp import tui_app

ENTRY = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) (\w+) +(.*)")
# The logger of the tool runner: its lines already say "run: ..." or "stderr of ...".
QUIET_PREFIXES = ("sys.run: ",)


@dataclass
class Entry:
    date: str
    time: str
    level: str
    message: str


def log_entries(text: str) -> list[Entry]:
    """The log file's entries; continuation lines (a tool's stderr) stay with theirs."""
    entries: list[Entry] = []
    for line in text.splitlines():
        match = ENTRY.fullmatch(line)
        if match:
            date, time, level, message = match.groups()
            for prefix in QUIET_PREFIXES:
                message = message.removeprefix(prefix)
            entries.append(Entry(date, time, level, message))
        elif entries:
            entries[-1].message += "\n" + line.strip()
        elif line.strip():
            entries.append(Entry("", "", "info", line))
    return entries


def entry_rows(entries: list[Entry]) -> list[Table]:
    """One two-column row per entry (the date on a row of its own when it changes)."""
    rows, date = [], ""
    for entry in entries:
        if entry.date and entry.date != date:
            date = entry.date
            rows.append(_row("", Text(date, style="bold")))
        level = "" if entry.level == "info" else f"{entry.level.upper()}: "
        style = "bold red" if entry.level in ("error", "critical") else (
            "yellow" if entry.level == "warning" else "")
        rows.append(_row(entry.time, Text(level + entry.message, style=style)))
    return rows


def _row(time: str, message: Text) -> Table:
    row = Table.grid(padding=(0, 1), expand=True)
    row.add_column(width=8, no_wrap=True)
    row.add_column(ratio=1, overflow="fold")
    row.add_row(time, message)
    return row


class LogScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"), Binding("s", "save", "Save to store"),
        Binding("f5", "reload", "Reload")]

    def __init__(self, stores: list[StoreLocation]) -> None:
        super().__init__()
        self.stores = stores

    def compose(self) -> ComposeResult:
        yield RichLog(id="log", wrap=True, min_width=1)
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()
        self.query_one(RichLog).focus()

    def action_reload(self) -> None:
        view = self.query_one(RichLog)
        view.clear()
        for row in entry_rows(log_entries(tui_app(self.app).log_file.text())):
            view.write(row, expand=True)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        initial = str(self.stores[0].path) if self.stores else "/mnt"
        self.app.push_screen(PathPrompt("Save the log into the store at:", initial), self.save)

    def save(self, store: Path | None) -> None:
        if store is None:
            return
        app = tui_app(self.app)
        try:  # a store the TUI mounted read-only to find it is made writable first
            target = app.backend.save_log(app.log_file, store)
        except RecoveryError as error:
            app.show_error(error)
            return
        self.notify(f"Log saved to {target}")
        self.action_reload()
