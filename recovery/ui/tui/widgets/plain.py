"""Options that show text exactly as given: disk models, file names, image names and engine
messages may contain [brackets], which Rich would otherwise take for markup and drop."""

from __future__ import annotations

from rich.text import Text
from textual.widgets.option_list import Option


class PlainOption(Option):
    def __init__(self, prompt: str, id: str | None = None, disabled: bool = False) -> None:
        super().__init__(Text(prompt), id=id, disabled=disabled)
