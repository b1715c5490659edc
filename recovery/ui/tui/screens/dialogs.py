"""Modal dialogs: engine errors, yes/no questions, type-to-confirm, a path prompt.

Every dialog is dismissed with the keyboard (Enter / Escape) because the console often has
no mouse; dismissing one never discards the work behind it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from recovery.errors import RecoveryError
from recovery.ui.tui.wording import tui_action


class ErrorDialog(ModalScreen[None]):
    """The engine's own title and what-to-do text, never a traceback."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "dismiss_dialog", "Close")]

    def __init__(self, error: RecoveryError) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(f"Error {self.error.code}: {self.error.kind}", classes="dialog-title",
                        markup=False)
            yield Static(self.error.title, id="error-title", markup=False)
            if tui_action(self.error):
                yield Static(f"What to do: {tui_action(self.error)}", id="error-action",
                             markup=False)
            problems = getattr(self.error, "problems", None)
            if problems:
                yield Static("\n".join(f"- {p}" for p in problems[:12]), id="error-problems",
                             markup=False)
            yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; No is the default so a stray Enter never destroys anything."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str, yes_label: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, id="question", markup=False)
            yield Button(f"{self.yes_label} (y)", id="yes", variant="error")
            yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


def confirmation_matches(typed: str, expected: str) -> bool:
    """Case and spacing do not matter: the technician copies what the screen shows."""
    def squeeze(text: str) -> str:
        return "".join(text.split()).lower()
    return bool(expected) and squeeze(typed) == squeeze(expected)


class TypeToConfirmDialog(ModalScreen[bool]):
    """Destructive step: the technician types a short code read from the target disk."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, warning: str, prompt: str, expected: str) -> None:
        super().__init__()
        self.warning = warning
        self.prompt = prompt
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog danger"):
            yield Static(self.warning, id="warning", markup=False)
            yield Label(self.prompt, markup=False)
            yield Input(id="typed", placeholder=f"type {self.expected}")
            yield Static("", id="mismatch", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if confirmation_matches(event.value, self.expected):
            self.dismiss(True)
        else:
            self.query_one("#mismatch", Static).update(
                f"'{event.value}' does not match; type {self.expected} or press Escape.")

    def action_cancel(self) -> None:
        self.dismiss(False)


class PathPrompt(ModalScreen[Path | None]):
    """Ask for a directory path (e.g. a store on a drive the scan did not find)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, initial: str = "/mnt") -> None:
        super().__init__()
        self.title_text = title
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, markup=False)
            yield Input(value=self.initial, id="path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.dismiss(Path(text) if text else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceDialog(ModalScreen[str | None]):
    """One of a few answers (id, text), picked with the arrow keys and Enter; Escape: none."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, id="question", markup=False)
            yield OptionList(*[Option(text, id=key) for key, text in self.choices],
                             id="choices")

    def on_mount(self) -> None:
        choices = self.query_one("#choices", OptionList)
        choices.highlighted = 0
        choices.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
