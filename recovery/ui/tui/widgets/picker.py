"""A checklist where Space toggles and Enter moves on (SelectionList toggles on both)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import SelectionList


class PartitionPicker(SelectionList[int]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "confirm", "Continue")]

    class Confirmed(Message):
        pass

    def action_confirm(self) -> None:
        self.post_message(self.Confirmed())
