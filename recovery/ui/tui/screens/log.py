"""The action log on screen, and saving it to an image store for the ticket."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Log

from recovery.engine.storescan import StoreLocation
from recovery.errors import RecoveryError
from recovery.ui.tui.screens.dialogs import PathPrompt
from recovery.ui.tui.tuiapp import tui_app


class LogScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"), Binding("s", "save", "Save to store"),
        Binding("f5", "reload", "Reload")]

    def __init__(self, stores: list[StoreLocation]) -> None:
        super().__init__()
        self.stores = stores

    def compose(self) -> ComposeResult:
        yield Log(id="log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()
        self.query_one(Log).focus()

    def action_reload(self) -> None:
        view = self.query_one(Log)
        view.clear()
        view.write(tui_app(self.app).log_file.text())

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
