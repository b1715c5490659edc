"""The end of a job: what happened, in numbers, plus every warning and problem."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static


class ResultScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "close", "Done")]

    def __init__(self, title: str, lines: list[str], ok: bool = True) -> None:
        super().__init__()
        self.result_title = title
        self.lines = lines
        self.ok = ok

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="wizard"):
            yield Label(self.result_title, id="result-title",
                        classes="screen-title" + ("" if self.ok else " refusal"), markup=False)
            yield Static("\n".join(self.lines), id="result-lines", markup=False)
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
