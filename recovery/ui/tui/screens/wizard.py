"""The shape every wizard shares: steps in a ContentSwitcher, Escape goes one step back
(leaving from the first), each step focuses its main widget so Enter works at once."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import ContentSwitcher, OptionList, Static

from recovery.engine.storescan import StoreLocation
from recovery.errors import RecoveryError
from recovery.store.images import ImageInfo
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.images import image_option
from recovery.ui.tui.widgets.plain import PlainOption

CHOOSE = "Enter: choose   Escape: back"


def key_hint(keys: str = CHOOSE) -> Static:
    """The line under a wizard step saying which keys go on (the same look on every step)."""
    return Static(keys, classes="hint", markup=False)


class Wizard(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    # (step container id, id of the widget that gets the focus) in order
    STEPS: ClassVar[list[tuple[str, str]]] = []
    # The first step's list of image stores, in wizards that begin by choosing one.
    STORE_LIST: ClassVar[str | None] = None
    stores: list[StoreLocation]

    step = 0

    def goto(self, step: int) -> None:
        self.step = step
        container, focus = self.STEPS[step]
        self.query_one(ContentSwitcher).current = container
        self.query_one(f"#{focus}").focus()

    def action_back(self) -> None:
        if self.step == 0:
            self.dismiss(None)
        else:
            self.goto(self.step - 1)

    def fill_stores(self, options: OptionList, stores: list[StoreLocation],
                    preselected: Path | None = None) -> None:
        options.clear_options()
        options.add_options([PlainOption(s.describe(), id=str(s.path)) for s in stores])
        paths = [s.path for s in stores]
        if paths:
            options.highlighted = paths.index(preselected) if preselected in paths else 0

    def stores_found(self, stores: list[StoreLocation]) -> None:
        """The home screen's listing ended after this wizard opened: a store on a drive it
        had to mount to look at comes last, so offer it while no store is chosen yet."""
        if self.STORE_LIST is None or self.step != 0:
            return
        if [s.path for s in stores] == [s.path for s in self.stores]:
            return
        options = self.query_one(f"#{self.STORE_LIST}", OptionList)
        index = options.highlighted
        current = None if index is None else Path(str(options.get_option_at_index(index).id))
        self.stores = stores
        self.fill_stores(options, stores, current)

    def load_images(self, store: Path, options: OptionList) -> list[ImageInfo] | None:
        """Fill `options` with the store's images (complete ones choosable); None on error."""
        try:
            images = tui_app(self.app).backend.images(store)
        except RecoveryError as error:
            tui_app(self.app).show_error(error)
            return None
        options.clear_options()
        options.add_options([image_option(info) for info in images])
        usable = [i for i, info in enumerate(images) if info.complete]
        if usable:
            options.highlighted = usable[0]
        return images
