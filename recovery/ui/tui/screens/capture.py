"""Capture wizard: source disk → partitions → store → name → summary → progress → result.

Each step is one widget in a ContentSwitcher; Enter goes forward, Escape goes back (and
leaves the wizard from the first step). The plan comes from the engine (plan_capture), so
the partitions, roles, used sizes and warnings shown are exactly what capture will do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    Footer,
    Input,
    Label,
    OptionList,
    SelectionList,
    Static,
)

from recovery.engine.capture import CapturePlan, CaptureRequest, source_identity
from recovery.engine.capture_result import CaptureSummary
from recovery.engine.storescan import NewStorePlace, StoreLocation
from recovery.engine.verify import VerifySummary
from recovery.errors import DeviceIOError, RecoveryError, UnreadableAreasError
from recovery.events import EventSink
from recovery.model.disk import Disk
from recovery.model.health import NOT_CHECKED
from recovery.store.objects import default_image_name
from recovery.ui.text import damage_report
from recovery.ui.tui.screens.dialogs import ChoiceDialog, ConfirmDialog, TypeToConfirmDialog
from recovery.ui.tui.screens.job import JobOutcome, JobScreen, settle
from recovery.ui.tui.screens.restore import confirmation_code
from recovery.ui.tui.screens.result import ResultScreen
from recovery.ui.tui.screens.wizard import Wizard, key_hint
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.disk_table import DiskTable
from recovery.ui.tui.widgets.picker import PartitionPicker, TickBox
from recovery.ui.tui.widgets.plain import PlainOption
from recovery.ui.tui.wording import tui_action
from recovery.units import human_size

PRESELECTED_ROLES = {"system", "reserved", "boot"}
NEW_PLACE = "new-store:"  # option id prefix of a file system for a new store
FORMAT = "format:"  # option id prefix of a drive without a file system
FS_NAMES = {"exfat": "exFAT (Windows, macOS and Linux read it)",
            "ntfs": "NTFS (Windows and Linux read it)"}


@dataclass(frozen=True)
class CaptureOutcome:
    summary: CaptureSummary
    check: VerifySummary  # the new image read back from the store


def capture_result_lines(outcome: CaptureOutcome, source: str = "") -> list[str]:
    """The result as sentences: what was captured from where, checked how, what next."""
    summary, check = outcome.summary, outcome.check
    stats = summary.stats
    disk = f"The disk {source}" if source else "The disk"
    lines = [f"{disk} was captured as the image {summary.image} in the store "
             f"{summary.store}.",
             f"Read {human_size(stats.bytes_read)} in {stats.seconds:.1f} s; "
             f"{human_size(stats.bytes_stored)} of new compressed data went into the store "
             f"({stats.chunks_new} new chunks, {stats.chunks_reused} already there, "
             f"{stats.chunks_zero} empty)."]
    for part in summary.partitions:
        fs_type = part.fs_type or "no file system"
        what = f"Partition {part.number} ({part.role}, {fs_type}): "
        lines.append(what + (f"{human_size(part.used_bytes)} of used data captured."
                             if part.selected else "not captured (not selected)."))
    lines += [f"Warning: {w}" for w in summary.warnings]
    if summary.unreadable_bytes:
        lines += [f"{human_size(summary.unreadable_bytes)} could not be read "
                  "from the failing disk; they are zeros in the image. Capture again in "
                  "rescue mode to retry only them.", "Damaged files:"]
        lines += damage_report(summary.partitions, summary.disk_unreadable)[1:]
    if check.ok:
        lines.append("Checked: the new image was read back from the store; every chunk is "
                     "there and intact (BLAKE3).")
        lines.append("Next: to put it back, press r on the home screen and choose this image.")
    else:
        lines.append(f"The check of the new image FAILED with {len(check.problems)} "
                     "problem(s); do not rely on it:")
        lines += [f"  - {problem}" for problem in check.problems]
        lines.append("Next: capture again onto another drive; this store's drive may be "
                     "failing.")
    return lines


def is_failing(disk: Disk) -> bool:
    """SMART says failing or warning: the capture wizard offers rescue mode first."""
    return disk.health.needs_care


def source_health_warning(disk: Disk) -> str:
    """What the source step says about a disk whose SMART health is failing or warning."""
    health = disk.health
    if not health.needs_care:
        return ""
    return (f"{disk.node.name}: health {health.describe()}.\nThis disk may be dying: capture "
            "it first and only once, before any check or repair; every read may be its last.")


class CaptureWizard(Wizard):
    BINDINGS: ClassVar[list[BindingType]] = [
        *Wizard.BINDINGS, Binding("r", "toggle_rescue", "Rescue mode", show=False),
        Binding("a", "read_all", "Read all", show=False)]
    STEPS: ClassVar[list[tuple[str, str]]] = [
        ("step-source", "source-disks"), ("step-partitions", "partitions"),
        ("step-store", "capture-stores"), ("step-name", "image-name"),
        ("step-summary", "start-capture")]

    def __init__(self, disks: list[Disk], stores: list[StoreLocation],
                 preselected: Disk | None = None) -> None:
        super().__init__()
        self.disks = [d for d in disks if not d.holds_live_medium]
        self.stores = stores
        self.preselected = preselected
        self.source: Disk | None = None
        self.plan: CapturePlan | None = None
        self.store: StoreLocation | None = None
        self.places: list[NewStorePlace] = []
        self.blank: list[Disk] = []

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial=self.STEPS[0][0], classes="wizard"):
            with Vertical(id="step-source"):
                yield Label("Capture 1/5: which disk holds Windows?", classes="screen-title",
                            markup=False)
                yield DiskTable(id="source-disks")
                health = Static("", id="source-health", classes="warning", markup=False)
                health.display = False
                yield health
                yield key_hint()
            with Vertical(id="step-partitions"):
                yield Label("Capture 2/5: partitions to capture", classes="screen-title",
                            markup=False)
                yield PartitionPicker(id="partitions")
                yield Static("", id="plan-warnings", classes="warning", markup=False)
                yield key_hint("Space: select/unselect   Enter: continue")
            with Vertical(id="step-store"):
                yield Label("Capture 3/5: where to store the image", classes="screen-title",
                            markup=False)
                yield OptionList(id="capture-stores")
                yield Static("", id="store-refusal", classes="refusal", markup=False)
                yield key_hint()
            with Vertical(id="step-name"):
                yield Label("Capture 4/5: name of the image", classes="screen-title", markup=False)
                yield Input(id="image-name")
                yield key_hint("Type to change the name   Enter: continue   Escape: back")
            with Vertical(id="step-summary"):
                yield Label("Capture 5/5: ready to capture", classes="screen-title", markup=False)
                yield Static("", id="summary", markup=False)
                # Each at most 71 characters: box, gaps and frame fill the rest of 80.
                yield TickBox("Rescue mode (r): failing disk; read past bad sectors, list files "
                              "hit", id="rescue")
                yield TickBox("Read all used blocks (a): slower; if changed outside Windows",
                              id="read-all")
                yield Button("Start the capture", id="start-capture", variant="primary")
                yield key_hint("Enter: start   r: rescue mode   a: read all   Escape: back")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#source-disks", DiskTable)
        table.show(self.disks)
        if self.preselected is not None and self.preselected in self.disks:
            table.move_cursor(row=table.get_row_index(f"disk:{self.preselected.node}"))
        table.focus()

    def on_unmount(self) -> None:
        # Left after choosing a new store's drive but before capturing (or after the
        # capture, a no-op then): the drive mounted read-write for it is let go.
        if self.store is not None:
            tui_app(self.app).backend.after_writing(self.store.path)

    # step 1: source -----------------------------------------------------------------------
    @on(DiskTable.RowHighlighted, "#source-disks")
    def source_highlighted(self) -> None:
        node = self.query_one("#source-disks", DiskTable).selected_node()
        disk = next((d for d in self.disks if d.node == node), None)
        warning = source_health_warning(disk) if disk else ""
        shown = self.query_one("#source-health", Static)
        shown.update(warning)
        shown.display = bool(warning)  # no empty line under the table of healthy disks

    @on(DiskTable.RowSelected, "#source-disks")
    def source_chosen(self) -> None:
        node = self.query_one("#source-disks", DiskTable).selected_node()
        self.source = next((d for d in self.disks if d.node == node), None)
        if self.source is not None:
            self.plan_source(self.source)

    @work(thread=True, exclusive=True, group="plan")
    def plan_source(self, disk: Disk) -> None:
        request = CaptureRequest(source=disk.node, store=None)
        backend = tui_app(self.app).backend
        try:
            plan = self.plan_or_rescue_plan(request)
        except RecoveryError as error:
            self.app.call_from_thread(tui_app(self.app).show_error, error)
            return
        if disk.health == NOT_CHECKED:  # chosen before the home screen's health check ended
            disk = self.source = backend.with_health([disk])[0]
        # The engine's plan reads the disk again without SMART: give it the health read here
        # (the rescue preselection and the warnings go by it).
        plan = replace(plan, disk=replace(plan.disk, health=disk.health))
        self.app.call_from_thread(self.show_plan, plan)

    def plan_or_rescue_plan(self, request: CaptureRequest) -> CapturePlan:
        """The plan; after a read error (in LBA 0, a GPT copy, a volume's boot sector) the
        plan a rescue makes, which goes past it, with rescue mode then ticked."""
        backend = tui_app(self.app).backend
        try:
            return backend.plan_capture(request)
        except DeviceIOError as error:
            if error.gone:
                raise
            return backend.plan_capture(replace(request, rescue=True))

    def show_plan(self, plan: CapturePlan) -> None:
        self.plan = plan
        # A disk whose SMART data says it is going, or that failed a read while planning:
        # the gentle read, before anything else.
        self.query_one("#rescue", Checkbox).value = is_failing(plan.disk) or \
            plan.request.rescue
        selection = self.query_one("#partitions", SelectionList)
        selection.clear_options()
        for planned in plan.partitions:
            volume, part = planned.volume, planned.partition
            text = (f"{part.number:>2} {planned.role:<8} {volume.fs_type or '?':<6} "
                    f"{(volume.label or '')[:14]:<14} {human_size(part.size):>9}, "
                    f"{human_size(volume.used_bytes)} used")
            selection.add_option((text, part.number, planned.role in PRESELECTED_ROLES))
        if selection.option_count:
            selection.highlighted = 0  # the cursor shows on a row before the first key
        warnings = [f"Partition {p.partition.number}: {w}"
                    for p in plan.partitions for w in p.volume.warnings]
        if self.source is not None and self.source.health.needs_care:
            warnings.insert(0, f"Disk health {self.source.health.describe()}")
        self.query_one("#plan-warnings", Static).update("\n".join(warnings))
        self.goto(1)

    # step 2: partitions -------------------------------------------------------------------
    def selected_numbers(self) -> frozenset[int]:
        """The partition numbers ticked: exactly what the capture will read."""
        return frozenset(self.query_one("#partitions", SelectionList).selected)

    @on(PartitionPicker.Confirmed)
    def partitions_chosen(self) -> None:
        if not self.selected_numbers():
            self.notify("Select at least one partition (Space).", severity="warning")
            return
        self.show_stores()

    def show_stores(self) -> None:
        self.query_one("#store-refusal", Static).update(
            "Looking for drives with room for the image…")
        self.fill_stores(self.query_one("#capture-stores", OptionList), self.stores)
        self.goto(2)
        self.find_places()

    @work(thread=True, exclusive=True, group="stores")
    def find_places(self) -> None:
        """Every store, and every writable file system a new one could go on (mounting
        unmounted partitions read-only to see their free space)."""
        backend = tui_app(self.app).backend
        try:
            stores = backend.stores(self.disks)
            places = backend.new_store_places(self.disks, self.source, stores)
            blank = backend.blank_drives(self.disks, self.source)
        except RecoveryError as error:
            self.app.call_from_thread(tui_app(self.app).show_error, error)
            return
        self.app.call_from_thread(self.show_places, stores, places, blank)

    def show_places(self, stores: list[StoreLocation], places: list[NewStorePlace],
                    blank: list[Disk]) -> None:
        self.stores, self.places, self.blank = stores, places, blank
        options = self.query_one("#capture-stores", OptionList)
        # The technician may have moved the cursor already: keep it on the same entry.
        before = options.highlighted_option.id if options.highlighted_option else None
        self.fill_stores(options, stores)
        options.add_options([PlainOption(place.describe(), id=f"{NEW_PLACE}{index}")
                             for index, place in enumerate(places)])
        options.add_options([PlainOption(f"Format {disk.describe()} for a new store "
                                         "(erases it)…", id=f"{FORMAT}{index}")
                             for index, disk in enumerate(blank)])
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        if before in ids:
            options.highlighted = ids.index(before)
        elif options.option_count and options.highlighted is None:
            options.highlighted = 0
        self.query_one("#store-refusal", Static).update(
            "" if options.option_count else
            "No drive to store the image on: plug in a USB drive with a file system "
            "(exFAT, NTFS, ext4); it appears here.")

    # step 3: store ------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#capture-stores")
    def store_chosen(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or ""
        if option_id.startswith(NEW_PLACE):
            self.prepare_place(self.places[int(option_id[len(NEW_PLACE):])])
            return
        if option_id.startswith(FORMAT):
            self.ask_format(self.blank[int(option_id[len(FORMAT):])])
            return
        store = next(s for s in self.stores if str(s.path) == option_id)
        refusal = self.store_refusal(store)
        if refusal:
            self.query_one("#store-refusal", Static).update(refusal)
            return
        self.use_store(store)

    @work(thread=True, exclusive=True, group="stores")
    def prepare_place(self, place: NewStorePlace) -> None:
        app = tui_app(self.app)
        try:
            store = app.backend.prepare_new_store(place)
        except RecoveryError as error:
            self.app.call_from_thread(app.show_error, error)
            return
        app.log_file.write(f"new store at {store.path} on {place.describe()}")
        self.app.call_from_thread(self.use_store, store)

    def ask_format(self, disk: Disk) -> None:
        """Which file system, then the drive's serial (or size) typed, as for a restore."""
        def chosen(fs: str | None) -> None:
            if fs is None:
                return
            prompt, expected = confirmation_code(disk)
            warning = (f"Everything on {disk.describe()} will be erased: one partition, "
                       f"formatted {FS_NAMES[fs]}, for the image store.")

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.format_drive(disk, fs)
            self.app.push_screen(TypeToConfirmDialog(warning, prompt, expected), confirmed)
        self.app.push_screen(ChoiceDialog(
            f"Format {disk.describe()} as:", list(FS_NAMES.items())), chosen)

    @work(thread=True, exclusive=True, group="stores")
    def format_drive(self, disk: Disk, fs: str) -> None:
        app = tui_app(self.app)
        app.log_file.write(f"formatting {disk.describe()} ({disk.node}) as {fs} for a store")
        self.app.call_from_thread(self.query_one("#store-refusal", Static).update,
                                  f"Formatting {disk.describe()}…")
        try:
            store = app.backend.format_for_store(disk, "ntfs" if fs == "ntfs" else "exfat",
                                                 self.source)
        except RecoveryError as error:
            self.app.call_from_thread(app.show_error, error)
            return
        app.log_file.write(f"new store at {store.path} on the formatted {disk.describe()}")
        self.app.call_from_thread(self.use_store, store)

    def use_store(self, store: StoreLocation) -> None:
        self.query_one("#store-refusal", Static).update("")
        self.store = store
        assert self.source is not None
        name = self.query_one("#image-name", Input)
        if not name.value:
            name.value = default_image_name(source_identity(self.source), datetime.now(UTC))
        self.goto(3)

    def store_refusal(self, store: StoreLocation) -> str:
        """The engine's refusal of this store for this source, worded for the TUI."""
        assert self.source is not None
        refusals = tui_app(self.app).backend.capture_refusals(self.source, store.path,
                                                              self.disks)
        return f"{refusals[0].title} {tui_action(refusals[0])}" if refusals else ""

    # step 4: name -------------------------------------------------------------------------
    @on(Input.Submitted, "#image-name")
    def name_chosen(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            return
        self.query_one("#summary", Static).update("\n".join(self.summary_lines()))
        self.goto(4)

    def summary_lines(self) -> list[str]:
        assert self.plan is not None and self.store is not None and self.source is not None
        numbers = self.selected_numbers()
        chosen = [p for p in self.plan.partitions if p.partition.number in numbers]
        used = sum(p.volume.used_bytes for p in chosen)
        lines = [f"Source:  {self.source.describe()}",
                 f"Store:   {self.store.path} ({human_size(self.store.free_bytes)} free)",
                 f"Name:    {self.image_name()}",
                 f"Partitions: {', '.join(str(p.partition.number) for p in chosen)} "
                 f"({human_size(used)} of used data to read)"]
        lines += [f"Warning: partition {p.partition.number}: {w}"
                  for p in chosen for w in p.volume.warnings]
        if is_failing(self.source):
            lines.append(f"Warning: disk health {self.source.health.describe()}: rescue mode "
                         "is preselected.")
        return lines

    def action_toggle_rescue(self) -> None:
        if self.step == len(self.STEPS) - 1:
            rescue = self.query_one("#rescue", Checkbox)
            rescue.value = not rescue.value

    def image_name(self) -> str:
        return self.query_one("#image-name", Input).value.strip()

    # step 5: run --------------------------------------------------------------------------
    def action_read_all(self) -> None:
        if self.step == 4:
            self.query_one("#read-all", Checkbox).toggle()

    @on(Button.Pressed, "#start-capture")
    def start_pressed(self) -> None:
        self.start()

    def start(self) -> None:
        assert self.source is not None and self.store is not None and self.plan is not None
        plan, store, name = self.plan, self.store.path, self.image_name()
        numbers = self.selected_numbers()
        rescue = self.query_one("#rescue", Checkbox).value
        read_all = self.query_one("#read-all", Checkbox).value
        app = tui_app(self.app)
        app.log_file.write(f"capture started: {self.source.describe()} -> {store} "
                           f"as {name}, partitions {', '.join(map(str, sorted(numbers)))}"
                           + (", rescue mode" if rescue else "")
                           + (", reading every used block" if read_all else ""))

        def job(events: EventSink, cancel: threading.Event) -> CaptureOutcome:
            # The plan shown in step 2, with exactly the ticked partition numbers.
            chosen = plan.choose(numbers, store=store, name=name)
            chosen = replace(chosen, request=replace(chosen.request, rescue=rescue,
                                                     read_all=read_all))
            try:
                summary = app.backend.execute_capture(chosen, events, cancel)
                check = app.backend.verify(store, summary.image, None, events, cancel)
            finally:
                app.backend.after_writing(store)
            return CaptureOutcome(summary, check)
        hold = app.backend.hold_job(f"capture of {self.source.describe()} ({self.source.node})",
                                    [self.source.node])
        self.app.push_screen(JobScreen(f"Capturing {self.source.describe()}", job, "capture",
                                       app.log_file, hold), self.finished)

    def finished(self, outcome: JobOutcome[CaptureOutcome] | None) -> None:
        app = tui_app(self.app)
        if outcome is not None and type(outcome.error) is DeviceIOError and \
                not self.query_one("#rescue", Checkbox).value:
            self.offer_rescue(outcome.error)
            return
        result = settle(app, outcome, "capture")
        if result is None:
            return
        lines = capture_result_lines(result, self.source.describe() if self.source else "")
        app.log_file.write("capture finished: " + " ".join(lines[:5]))
        self.dismiss(None)
        title = "Capture finished"
        if result.summary.unreadable_bytes:
            title += f" with unreadable areas (exit {UnreadableAreasError.code})"
        app.push_screen(ResultScreen(title, lines, ok=result.check.ok
                                     and not result.summary.unreadable_bytes))

    def offer_rescue(self, error: RecoveryError) -> None:
        """A read error ended a normal capture: the disk may be failing; offer the rescue
        read, which continues the same (incomplete) image."""
        app = tui_app(self.app)
        app.log_file.error(error)

        def answered(rescue: bool | None) -> None:
            if rescue:
                self.query_one("#rescue", Checkbox).value = True
                self.start()
            else:
                app.show_error(error)
        app.push_screen(ConfirmDialog(
            f"{error.title}\n\nThe disk may be failing. Capture it again in rescue mode? It "
            "keeps going past unreadable sectors, reads them again last, stores them as "
            "zeros and lists the files they hit.", "Rescue mode"), answered)
