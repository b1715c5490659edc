"""Restore points: pick the Windows volume, list its points, diff, roll back, undo."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from recovery.model.disk import Disk
from recovery.units import human_size


class RestorePointsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Back")]

    def __init__(self, disks: list[Disk]) -> None:
        super().__init__()
        self.disks = disks

    def compose(self) -> ComposeResult:
        with Vertical(classes="wizard"):
            yield Label("Restore points 1/3: Windows volume", classes="screen-title")
            yield OptionList(*self.volume_options(), id="volumes")
            yield Static("", id="points-status")
        yield Footer()

    def volume_options(self) -> list[Option]:
        options = []
        for disk in self.disks:
            for part in disk.partitions:
                if part.fs_type.lower() == "ntfs":
                    options.append(Option(
                        f"{disk.node.name} partition {part.number}: {part.fs_label or 'NTFS'} "
                        f"{human_size(part.size)} on {disk.describe()}",
                        id=f"{disk.node}:{part.number}"))
        return options

    def action_close(self) -> None:
        self.dismiss(None)
