"""Verify: an image on its own (every chunk present and matching its hash), or an image
against a disk (what is on the disk equals the image), listing every problem found."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Footer, Label, OptionList

from recovery.engine.storescan import StoreLocation
from recovery.engine.verify import VerifySummary
from recovery.events import EventSink
from recovery.model.disk import Disk
from recovery.store.images import ImageInfo
from recovery.ui.tui.screens.job import JobOutcome, JobScreen, settle
from recovery.ui.tui.screens.result import ResultScreen
from recovery.ui.tui.screens.wizard import Wizard
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.plain import PlainOption
from recovery.units import human_size

IMAGE_ONLY = "image-only"


def verify_result_lines(summary: VerifySummary) -> list[str]:
    """The result as sentences: what was checked against what, found what, what next."""
    against = f" against the disk {summary.target}" if summary.target else ""
    checked = (f"{summary.chunks_checked} chunks ({human_size(summary.bytes_checked)}) read "
               f"and compared with their BLAKE3 hashes in {summary.seconds:.1f} s")
    if summary.ok:
        return [f"The image {summary.image} was checked{against}: {checked}; no problems "
                "found.",
                "Next: it can be restored (r on the home screen)." if not summary.target else
                "Next: the disk holds exactly what the image holds."]
    return [f"The image {summary.image} was checked{against}: {checked}; "
            f"{len(summary.problems)} problem(s) found:",
            *[f"  - {problem}" for problem in summary.problems],
            "Next: restore the image again onto that disk (r)." if summary.target else
            "Next: do not restore this image; capture the PC again or use another image."]


class VerifyScreen(Wizard):
    STEPS: ClassVar[list[tuple[str, str]]] = [
        ("verify-store", "verify-stores"), ("verify-image", "verify-images"),
        ("verify-target", "verify-targets")]
    STORE_LIST: ClassVar[str | None] = "verify-stores"

    def __init__(self, disks: list[Disk], stores: list[StoreLocation],
                 preselected: Path | None = None) -> None:
        super().__init__()
        self.disks = [d for d in disks if not d.holds_live_medium]
        self.stores = stores
        self.preselected = preselected
        self.store: Path | None = None
        self.images: list[ImageInfo] = []
        self.image = ""

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial=self.STEPS[0][0], classes="wizard"):
            with Vertical(id="verify-store"):
                yield Label("Verify 1/3: image store", classes="screen-title", markup=False)
                yield OptionList(id="verify-stores")
            with Vertical(id="verify-image"):
                yield Label("Verify 2/3: image", classes="screen-title", markup=False)
                yield OptionList(id="verify-images")
            with Vertical(id="verify-target"):
                yield Label("Verify 3/3: check the image alone, or against a disk",
                            classes="screen-title", markup=False)
                yield OptionList(id="verify-targets")
        yield Footer()

    def on_mount(self) -> None:
        options = self.query_one("#verify-stores", OptionList)
        self.fill_stores(options, self.stores, self.preselected)
        options.focus()

    @on(OptionList.OptionSelected, "#verify-stores")
    def store_chosen(self, event: OptionList.OptionSelected) -> None:
        self.store = Path(str(event.option.id))
        images = self.load_images(self.store, self.query_one("#verify-images", OptionList))
        if images is not None:
            self.images = images
            self.goto(1)

    @on(OptionList.OptionSelected, "#verify-images")
    def image_chosen(self, event: OptionList.OptionSelected) -> None:
        self.image = str(event.option.id)
        options = self.query_one("#verify-targets", OptionList)
        options.clear_options()
        options.add_option(PlainOption("The image only (every chunk readable and intact)",
                                  id=IMAGE_ONLY))
        for disk in self.disks:
            options.add_option(PlainOption(f"Against {disk.node.name}: {disk.describe()}",
                                      id=str(disk.node)))
        self.goto(2)

    @on(OptionList.OptionSelected, "#verify-targets")
    def target_chosen(self, event: OptionList.OptionSelected) -> None:
        assert self.store is not None
        target = None if event.option.id == IMAGE_ONLY else Path(str(event.option.id))
        store, image = self.store, self.image
        app = tui_app(self.app)
        app.log_file.write(f"verify started: {image} in {store}"
                           + (f" against {target}" if target else " (image only)"))

        def job(events: EventSink, cancel: threading.Event) -> VerifySummary:
            return app.backend.verify(store, image, target, events, cancel)
        # Only a check against a disk is a job: it reads that disk for a while.
        hold = (app.backend.hold_job(f"verification of {target} against image {image}",
                                     [target]) if target is not None else None)
        self.app.push_screen(JobScreen(f"Verifying {image}", job, "verification",
                                       app.log_file, hold), self.finished)

    def finished(self, outcome: JobOutcome[VerifySummary] | None) -> None:
        app = tui_app(self.app)
        summary = settle(app, outcome, "verification")
        if summary is None:
            return
        lines = verify_result_lines(summary)
        app.log_file.write(f"verify finished: {self.image}: " + "; ".join(lines))
        app.push_screen(ResultScreen(f"Verification of {self.image}", lines, ok=summary.ok))
