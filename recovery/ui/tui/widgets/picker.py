"""A checklist where Space toggles and Enter moves on (SelectionList toggles on both), and
a checkbox drawn as plainly."""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList


class PartitionPicker(SelectionList[int]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "confirm", "Continue")]

    class Confirmed(Message):
        pass

    def action_confirm(self) -> None:
        self.post_message(self.Confirmed())

    def render_line(self, y: int) -> Strip:
        """An unticked box is blank. Textual draws its "X" in a shade of the box's colour,
        which the Linux console's 8 text colours make the box colour itself (or a visible
        X, on other palettes): a blank says "not selected" on every screen."""
        line = super().render_line(y)
        index = self.scroll_offset.y + y
        if index >= self.option_count or self.get_option_at_index(index).value in self._selected:
            return line
        segments = list(line)
        if len(segments) > 1 and segments[1].text == Checkbox.BUTTON_INNER:
            segments[1] = Segment(" ", segments[1].style)
            return Strip(segments, line.cell_length)
        return line


class TickBox(Checkbox):
    """A checkbox whose unticked box is blank, for the reason PartitionPicker gives."""

    def __init__(self, label: str, value: bool = False, id: str | None = None) -> None:
        super().__init__(label, value, id=id)
        self.watch_value()

    def watch_value(self) -> None:
        self.BUTTON_INNER = Checkbox.BUTTON_INNER if self.value else " "
        self.refresh()
