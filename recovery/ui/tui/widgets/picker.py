"""A checklist where Space toggles and Enter moves on (SelectionList toggles on both), and
a checkbox drawn as plainly."""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList

from recovery.ui.tui.tuiapp import tui_app


class PartitionPicker(SelectionList[int]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "confirm", "Continue")]

    class Confirmed(Message):
        pass

    def action_confirm(self) -> None:
        self.post_message(self.Confirmed())

    def render_line(self, y: int) -> Strip:
        """An unticked box is blank. Textual draws its "X" in a shade of the box's colour,
        which the Linux console's 8 text colours make the box colour itself (or a visible
        X, on other palettes): a blank says "not selected" on every screen. On the console
        the box is text in the option's colours, "[X]" / "[ ]" (see TickBox)."""
        line = super().render_line(y)
        index = self.scroll_offset.y + y
        segments = list(line)
        if (index >= self.option_count or len(segments) < 4
                or segments[1].text != Checkbox.BUTTON_INNER):
            return line
        ticked = self.get_option_at_index(index).value in self.selected
        if tui_app(self.app).PLAIN_TICK_BOXES:
            # segments[3] is the gap before the prompt, in the row's own colours.
            style = (segments[3].style or self.rich_style) + Style(meta={"option": index})
            box = [Segment(char, style) for char in ("[", "X" if ticked else " ", "]")]
            return Strip(box + segments[3:], line.cell_length)
        if not ticked:
            segments[1] = Segment(" ", segments[1].style)
        return Strip(segments, line.cell_length)


class TickBox(Checkbox):
    """A checkbox whose unticked box is blank, for the reason PartitionPicker gives; on the
    Linux console "[X]" / "[ ]" in the label's colours: Textual's box there is a solid grey
    cell whether ticked or not (half blocks around a cell in 8 colours)."""

    def __init__(self, label: str, value: bool = False, id: str | None = None) -> None:
        super().__init__(label, value, id=id)
        self.watch_value()

    def watch_value(self) -> None:
        self.BUTTON_INNER = Checkbox.BUTTON_INNER if self.value else " "
        self.refresh()

    def render(self) -> Content:
        if not tui_app(self.app).PLAIN_TICK_BOXES:
            return super().render()
        style = self.get_visual_style("toggle--label")
        box = "[X]" if self.value else "[ ]"
        return Content.assemble((box, style), self.label.pad(1, 1).stylize_before(style))
