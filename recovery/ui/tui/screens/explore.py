"""Explore an image without restoring it: store -> image -> partition -> a file browser.

The browser shows one folder at a time (name, size, modified time); Enter opens a folder,
Backspace goes up, Space marks files and folders, x copies what is marked (or the row
under the cursor) with the progress screen: onto a drive the technician picks from every
writable file system plugged in (mounted read-write for the copy, unmounted after; the
files land in its folder recovered-IMAGE), or into a folder typed by hand. The
partition step also lists the restore points that live inside the captured volume.
Nothing is written to the store; folders are read in a worker, one at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.widgets import ContentSwitcher, DataTable, Footer, Label, OptionList, Static

from recovery.engine.storescan import NewStorePlace, StoreLocation, locate
from recovery.errors import RecoveryError
from recovery.events import EventSink
from recovery.fs.browse import FileEntry
from recovery.store.images import ImageInfo
from recovery.store.imageview import BROWSABLE, pick_partition
from recovery.ui.tui.screens.dialogs import ChoiceDialog, PathPrompt
from recovery.ui.tui.screens.job import JobOutcome, JobScreen, settle
from recovery.ui.tui.screens.result import ResultScreen
from recovery.ui.tui.screens.wizard import Wizard
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.plain import PlainOption
from recovery.units import human_size

if TYPE_CHECKING:
    from recovery.engine.explore import OpenedImage
    from recovery.engine.extract import ExtractSummary
    from recovery.registry.inspect import PointsReport

POINTS = "points:"
PLACE = "place:"
TYPED = "typed"
BROWSER_ACTIONS = ("mark", "up", "copy")


def entry_row(entry: FileEntry, marked: bool) -> tuple[str, str, str, str]:
    size = "<folder>" if entry.is_dir else human_size(entry.size)
    name = entry.name + ("/" if entry.is_dir else "")
    return ("*" if marked else " ", name, size, entry.modified[:16].replace("T", " "))


def points_lines(report: PointsReport) -> list[str]:
    lines = [f"{len(report.listing.points)} restore point(s) inside "
             f"{report.volume.describe()}:"]
    for point in report.listing.points:
        hives = ", ".join(f"{n} {c.status}" for n, c in point.hives.items()) or "no hives"
        lines.append(f"  {point.id:<10} {point.source:<8} "
                     f"{point.created.strftime('%Y-%m-%d %H:%M')} UTC  {hives}")
    lines += [f"Note: {note}" for note in report.listing.notes]
    lines.append("Rolling back is done on the disk: restore the image first, then use "
                 "Points (key p) on the home screen.")
    return lines


class ExploreScreen(Wizard):
    STEPS: ClassVar[list[tuple[str, str]]] = [
        ("explore-store", "explore-stores"), ("explore-image", "explore-images"),
        ("explore-part", "explore-parts"), ("explore-files", "explore-table")]
    STORE_LIST: ClassVar[str | None] = "explore-stores"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("space", "mark", "Mark"),
        Binding("backspace", "up", "Up"),
        Binding("x", "copy", "Copy out"),
    ]

    def __init__(self, stores: list[StoreLocation], preselected: Path | None = None) -> None:
        super().__init__()
        self.stores = stores
        self.preselected = preselected
        self.store: Path | None = None
        self.images: list[ImageInfo] = []
        self.image = ""
        self.partition = 0
        self.opened: OpenedImage | None = None
        self.folder = "/"
        self.entries: list[FileEntry] = []
        self.marked: dict[str, FileEntry] = {}
        self.destinations: list[NewStorePlace] = []  # offered for the last copy

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial=self.STEPS[0][0], classes="wizard"):
            with Vertical(id="explore-store"):
                yield Label("Explore 1/3: image store", classes="screen-title", markup=False)
                yield OptionList(id="explore-stores")
            with Vertical(id="explore-image"):
                yield Label("Explore 2/3: image", classes="screen-title", markup=False)
                yield OptionList(id="explore-images")
            with Vertical(id="explore-part"):
                yield Label("Explore 3/3: partition to open", classes="screen-title",
                            markup=False)
                yield OptionList(id="explore-parts")
            with Vertical(id="explore-files"):
                yield Label("", id="explore-path", classes="screen-title", markup=False)
                yield DataTable(id="explore-table", cursor_type="row", zebra_stripes=False)
                yield Static("", id="explore-status", classes="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#explore-table", DataTable)
        table.add_columns(" ", "Name", "Size", "Modified (UTC)")
        options = self.query_one("#explore-stores", OptionList)
        self.fill_stores(options, self.stores, self.preselected)
        options.focus()

    def on_unmount(self) -> None:
        self._close_image()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in BROWSER_ACTIONS:
            return self.step == 3
        return True

    # --- store, image, partition ---------------------------------------------------------
    @on(OptionList.OptionSelected, "#explore-stores")
    def store_chosen(self, event: OptionList.OptionSelected) -> None:
        self.store = Path(str(event.option.id))
        images = self.load_images(self.store, self.query_one("#explore-images", OptionList))
        if images is not None:
            self.images = images
            self.goto(1)

    @on(OptionList.OptionSelected, "#explore-images")
    def image_chosen(self, event: OptionList.OptionSelected) -> None:
        self.image = str(event.option.id)
        info = next(i for i in self.images if i.name == self.image)
        assert info.manifest is not None
        options = self.query_one("#explore-parts", OptionList)
        options.clear_options()
        default = pick_partition(info.manifest, None, self.image).number \
            if any(p.fs_type in BROWSABLE for p in info.manifest.captured_partitions) else 0
        start = 0
        for part in info.manifest.captured_partitions:
            if part.number == default:
                start = options.option_count
            label = f"{part.number}: {part.role:<8} {part.fs_type:<6} {part.label[:16]:<16} " \
                    f"{human_size(part.size):>9} ({human_size(part.used_bytes)} used)"
            browsable = part.fs_type in BROWSABLE
            options.add_option(PlainOption(label, id=str(part.number),
                                           disabled=not browsable))
            if part.fs_type == "ntfs":
                options.add_option(PlainOption(f"   restore points inside partition "
                                               f"{part.number}", id=f"{POINTS}{part.number}"))
        options.highlighted = start
        self.goto(2)

    @on(OptionList.OptionSelected, "#explore-parts")
    def part_chosen(self, event: OptionList.OptionSelected) -> None:
        choice = str(event.option.id)
        if choice.startswith(POINTS):
            self._show_points(int(choice.removeprefix(POINTS)))
            return
        self.partition = int(choice)
        self._close_image()
        self.marked.clear()
        self.folder = "/"
        self.goto(3)
        self.query_one("#explore-status", Static).update("Opening the partition…")
        self.open_folder("/")

    def _close_image(self) -> None:
        if self.opened is not None:
            self.opened.close()
            self.opened = None

    # --- the browser ---------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="explore")
    def open_folder(self, path: str) -> None:
        assert self.store is not None
        backend = tui_app(self.app).backend
        try:
            if self.opened is None:
                self.opened = backend.open_image(self.store, self.image, self.partition)
            entries = self.opened.list_dir(path)
        except RecoveryError as error:
            self.app.call_from_thread(tui_app(self.app).show_error, error)
            return
        self.app.call_from_thread(self.show_folder, path, entries)

    def show_folder(self, path: str, entries: list[FileEntry]) -> None:
        self.folder, self.entries = path, entries
        self.query_one("#explore-path", Label).update(
            f"{self.image}, partition {self.partition}: {path}")
        table = self.query_one("#explore-table", DataTable)
        table.clear()
        for entry in entries:
            table.add_row(*entry_row(entry, entry.path in self.marked), key=entry.path)
        self._status()
        table.focus()

    def _status(self) -> None:
        size = sum(e.size for e in self.marked.values())
        text = (f"{len(self.marked)} marked ({human_size(size)} in files; folders count "
                "when copied)" if self.marked else f"{len(self.entries)} items")
        self.query_one("#explore-status", Static).update(
            text + ". Enter: open, Space: mark, x: copy out, Backspace: up.")

    def _current(self) -> FileEntry | None:
        table = self.query_one("#explore-table", DataTable)
        if not self.entries or table.cursor_row is None:
            return None
        return self.entries[min(table.cursor_row, len(self.entries) - 1)]

    @on(DataTable.RowSelected, "#explore-table")
    def row_chosen(self, event: DataTable.RowSelected) -> None:
        entry = self._current()
        if entry is not None and entry.is_dir and not entry.link_target:
            self.open_folder(entry.path)

    def action_mark(self) -> None:
        entry = self._current()
        if entry is None:
            return
        if self.marked.pop(entry.path, None) is None:
            self.marked[entry.path] = entry
        table = self.query_one("#explore-table", DataTable)
        row = table.cursor_row
        table.update_cell_at(Coordinate(row, 0), "*" if entry.path in self.marked else " ")
        table.move_cursor(row=min(row + 1, len(self.entries) - 1))
        self._status()

    def action_up(self) -> None:
        if self.folder != "/":
            self.open_folder(self.folder.rsplit("/", 1)[0] or "/")

    def action_back(self) -> None:
        if self.step == 3 and self.folder != "/":
            self.action_up()
            return
        super().action_back()

    def action_copy(self) -> None:
        chosen = list(self.marked) or [e.path for e in [self._current()] if e is not None]
        if chosen:
            self.find_destinations(chosen)

    @work(thread=True, exclusive=True, group="destinations")
    def find_destinations(self, chosen: list[str]) -> None:
        """Every writable file system plugged in but the one holding this store (it is only
        ever read), to offer as where the files go."""
        backend = tui_app(self.app).backend
        try:
            disks = backend.disks()
            reading = [locate(self.store)] if self.store is not None else []
            places = backend.new_store_places(disks, None, reading)
        except RecoveryError as error:
            self.app.call_from_thread(tui_app(self.app).show_error, error)
            return
        self.app.call_from_thread(self.ask_destination, chosen, places)

    def ask_destination(self, chosen: list[str], places: list[NewStorePlace]) -> None:
        """A drive from `places`, or a folder typed by hand (straight away when no drive
        is plugged in)."""
        self.destinations = places
        folder = f"recovered-{self.image}"
        choices = [(f"{PLACE}{index}", f"{place.drive()}: into {folder}")
                   for index, place in enumerate(places)]

        def answered(key: str | None) -> None:
            if key == TYPED:
                self.app.push_screen(
                    PathPrompt(f"Copy {len(chosen)} item(s) into the folder (created if "
                               "needed):", self._default_destination()),
                    lambda dest: self._copy(chosen, dest))
            elif key is not None:
                self._copy(chosen, None, places[int(key[len(PLACE):])])
        if not places:
            answered(TYPED)
            return
        self.app.push_screen(ChoiceDialog(f"Copy {len(chosen)} item(s) to:",
                                          [*choices, (TYPED, "A folder I type…")]), answered)

    def _default_destination(self) -> str:
        others = [s.path for s in self.stores if s.path != self.store]
        base = others[0] if others else Path("/mnt")
        return str(base / f"recovered-{self.image}")

    def _copy(self, paths: list[str], dest: Path | None,
              place: NewStorePlace | None = None) -> None:
        if (dest is None and place is None) or self.store is None:
            return
        from recovery.engine.extract import ExtractRequest

        store, image, partition = self.store, self.image, self.partition
        app = tui_app(self.app)
        where = str(dest) if place is None else f"{place.drive()}, recovered-{image}"
        app.log_file.write(f"extract started: {', '.join(paths)} from {image} "
                           f"partition {partition} to {where}")

        def job(events: EventSink, cancel: threading.Event) -> ExtractSummary:
            root = app.backend.writable_place(place) if place is not None else None
            target = root / f"recovered-{image}" if root is not None else dest
            assert target is not None
            try:
                return app.backend.extract(
                    ExtractRequest(store, image, tuple(paths), target, partition,
                                   create_destination=True), events, cancel)
            finally:
                if root is not None:
                    app.backend.after_writing(root)
        self.app.push_screen(JobScreen(f"Copying out of {image}", job, "copy",
                                       app.log_file),
                             lambda outcome: self._copied(outcome, place))

    def _copied(self, outcome: JobOutcome[ExtractSummary] | None,
                place: NewStorePlace | None) -> None:
        from recovery.ui.cli_explore import extract_text

        app = tui_app(self.app)
        summary = settle(app, outcome, "copy")
        if summary is None:
            return
        lines = extract_text(summary).splitlines()
        if place is not None:
            lines.append(f"They are on {place.drive()}, in the folder "
                         f"recovered-{self.image}; the drive was unmounted and can be "
                         "unplugged.")
        app.log_file.write("extract finished: " + "; ".join(lines))
        self.marked.clear()
        self.show_folder(self.folder, self.entries)
        app.push_screen(ResultScreen(f"Copied out of {self.image}", lines, ok=summary.ok))

    # --- restore points ------------------------------------------------------------------
    def _show_points(self, partition: int) -> None:
        assert self.store is not None
        store, image = self.store, self.image
        app = tui_app(self.app)

        def job(events: EventSink, cancel: threading.Event) -> PointsReport:
            return app.backend.image_points(store, image, partition)

        def done(outcome: JobOutcome[PointsReport] | None) -> None:
            report = settle(app, outcome, "restore point listing")
            if report is not None:
                app.push_screen(ResultScreen(f"Restore points in {image}",
                                             points_lines(report)))
        self.app.push_screen(JobScreen(f"Reading the restore points inside {image}", job,
                                       "restore point listing", app.log_file), done)
