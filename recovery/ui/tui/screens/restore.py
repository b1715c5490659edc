"""Restore wizard: store → image → target disk → what will be lost → type-to-confirm →
progress → read-back verification result.

Every candidate target is run through the engine's own plan (plan_restore), so the refusals
shown here are the safety gate's, word for word; a refused disk is listed with its reason and
cannot be chosen. The live medium and the store's disk never appear as choices.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    Footer,
    Input,
    Label,
    OptionList,
    Static,
)

from recovery.engine.resize import LayoutChoice
from recovery.engine.restore import RestorePlan, RestoreRequest, RestoreSummary
from recovery.engine.storescan import StoreLocation
from recovery.errors import FailingTargetError, NotConfirmedError, RecoveryError
from recovery.events import EventSink
from recovery.model.disk import Disk
from recovery.store.images import ImageInfo
from recovery.ui import text
from recovery.ui.tui.screens.dialogs import ConfirmDialog, TypeToConfirmDialog
from recovery.ui.tui.screens.job import JobOutcome, JobScreen, settle
from recovery.ui.tui.screens.result import ResultScreen
from recovery.ui.tui.screens.wizard import Wizard, key_hint
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.images import describe_image, source_id
from recovery.ui.tui.widgets.picker import TickBox
from recovery.ui.tui.widgets.plain import PlainOption
from recovery.ui.tui.wording import tui_message
from recovery.units import human_size, parse_size


@dataclass(frozen=True)
class Candidate:
    disk: Disk
    plan: RestorePlan | None
    refusals: tuple[str, ...]
    # The gate's refusal of a disk whose SMART health is failing: the technician is asked
    # and may insist, unlike the other refusals.
    failing: str = ""


def confirmation_code(disk: Disk) -> tuple[str, str]:
    """What the technician must type: (prompt, expected)."""
    if len(disk.serial) >= 4:
        return f"Type the last 4 characters of the serial ({disk.serial}):", disk.serial[-4:]
    size = human_size(disk.size)
    return f"This disk has no serial. Type its size ({size}):", size


def restore_result_lines(summary: RestoreSummary) -> list[str]:
    """The result as sentences: what was written where, checked how, what next."""
    how = " (only the chunks that differed were written)" if summary.delta else ""
    lines = [f"The image {summary.image} was restored onto {summary.target}{how}.",
             f"Written: {human_size(summary.bytes_written)} in {summary.seconds:.1f} s "
             f"({summary.chunks_written} chunks written, {summary.chunks_skipped} already "
             "in place)."]
    if summary.verified:
        lines.append("Checked: everything written was read back from the disk, past the "
                     "cache, and matches the image (BLAKE3).")
    else:
        lines.append("Not checked: the written data was not read back; run Verify (v) "
                     "against this disk before relying on it.")
    if summary.unreadable_bytes:
        lines.append(f"Warning: {human_size(summary.unreadable_bytes)} were unreadable on "
                     "the source disk and are zeros on the target (the image lists the "
                     "damaged files); run chkdsk /f in Windows.")
    lines.append("Next: remove the recovery stick and start the PC from this disk.")
    return lines


def _candidate(disk: Disk, plan: RestorePlan) -> Candidate:
    """The technician confirms later in this wizard and is asked about a failing disk; the
    other refusals rule the disk out."""
    failing = next((r.title for r in plan.refusals if isinstance(r, FailingTargetError)), "")
    reasons = tuple(tui_message(r) for r in plan.refusals
                    if not isinstance(r, NotConfirmedError | FailingTargetError))
    if reasons and failing:
        reasons += (failing,)
    # The plan read the target's health just now; the listing may not have had it yet.
    return Candidate(dataclasses.replace(disk, health=plan.target.health), plan, reasons,
                     failing)


class RestoreWizard(Wizard):
    STEPS: ClassVar[list[tuple[str, str]]] = [
        ("step-store", "restore-stores"), ("step-image", "images"),
        ("step-target", "targets"), ("step-lost", "overwrite")]
    STORE_LIST: ClassVar[str | None] = "restore-stores"

    def __init__(self, disks: list[Disk], stores: list[StoreLocation],
                 preselected: Path | None = None) -> None:
        super().__init__()
        self.disks = disks
        self.stores = stores
        self.preselected = preselected
        self.store: Path | None = None
        self.images: list[ImageInfo] = []
        self.image: ImageInfo | None = None
        self.candidates: list[Candidate] = []
        self.suggested_target: str | None = None  # the target this list highlighted itself
        self.target: Candidate | None = None
        self.targets_checked = False
        self.allow_failing = False  # the technician said yes to restoring onto a failing disk

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial=self.STEPS[0][0], classes="wizard"):
            with Vertical(id="step-store"):
                yield Label("Restore 1/4: image store", classes="screen-title", markup=False)
                yield OptionList(id="restore-stores")
                yield key_hint()
            with Vertical(id="step-image"):
                yield Label("Restore 2/4: image to restore", classes="screen-title", markup=False)
                yield OptionList(id="images")
                yield Static("", id="image-details", markup=False)
                yield key_hint()
            with Vertical(id="step-target"):
                yield Label("Restore 3/4: disk to overwrite", classes="screen-title", markup=False)
                yield OptionList(id="targets")
                yield Static("Checking disks…", id="target-details", markup=False)
                yield key_hint()
            with Vertical(id="step-lost"):
                yield Label("Restore 4/4: this will be LOST", classes="screen-title refusal",
                            markup=False)
                yield Static("", id="lost", markup=False)
                yield TickBox("Delta restore: write only chunks that differ", id="delta")
                yield Button("Overwrite this disk…", id="overwrite", variant="error")
                yield key_hint("Enter: overwrite (you type the disk's code first)   "
                               "Escape: back")
                with Vertical(id="system-size-choice"):
                    yield Label("Windows size (Tab here, type e.g. 300M, Enter; empty: as "
                                "large as fits):", markup=False)
                    yield Input(id="system-size")
                    yield Static("", id="system-size-refusal", classes="refusal",
                                 markup=False)
        yield Footer()

    def on_mount(self) -> None:
        options = self.query_one("#restore-stores", OptionList)
        self.fill_stores(options, self.stores, self.preselected)
        options.focus()

    # step 1: store ------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#restore-stores")
    def store_chosen(self, event: OptionList.OptionSelected) -> None:
        self.store = Path(str(event.option.id))
        images = self.load_images(self.store, self.query_one("#images", OptionList))
        if images is not None:
            self.images = images
            self.goto(1)

    # step 2: image ------------------------------------------------------------------------
    @on(OptionList.OptionHighlighted, "#images")
    def image_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        info = next((i for i in self.images if i.name == event.option.id), None)
        if info is not None:
            self.query_one("#image-details", Static).update(describe_image(info))

    @on(OptionList.OptionSelected, "#images")
    def image_chosen(self, event: OptionList.OptionSelected) -> None:
        self.image = next(i for i in self.images if i.name == event.option.id)
        self.query_one("#targets", OptionList).clear_options()
        self.targets_checked = False
        self.query_one("#target-details", Static).update("Checking disks…")
        self.goto(2)
        self.check_targets()

    # step 3: target -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="plan")
    def check_targets(self) -> None:
        assert self.store is not None and self.image is not None
        backend = tui_app(self.app).backend
        holders = {d.stable_id for d in backend.disks_holding(self.store, self.disks)}
        offered = [d for d in self.disks
                   if not d.holds_live_medium and d.stable_id not in holders]
        candidates: list[Candidate] = []
        # Each check reads the disk list and the image; show disks as they are checked.
        for disk in offered:
            request = RestoreRequest(store=self.store, image=self.image.name, target=disk.node)
            try:
                plan = backend.plan_restore(request)
            except RecoveryError as error:
                candidates.append(Candidate(disk, None, (tui_message(error),)))
            else:
                candidates.append(_candidate(disk, plan))
            self.app.call_from_thread(self.show_targets, list(candidates), len(offered))
        if not offered:
            self.app.call_from_thread(self.show_targets, [], 0)

    def show_targets(self, candidates: list[Candidate], total: int) -> None:
        self.candidates = candidates
        self.targets_checked = len(candidates) == total
        options = self.query_one("#targets", OptionList)
        before = options.highlighted_option.id if options.highlighted_option else None
        # The disks are checked one by one and the list redrawn each time: a disk the
        # technician moved to stays chosen; one this list suggested is suggested again
        # (the image's own disk may only now have been checked).
        keep = before if before != self.suggested_target else None
        options.clear_options()
        wanted = source_id(self.image) if self.image else ""
        for candidate in candidates:
            disk = candidate.disk
            serial = f"serial {disk.serial}, " if disk.serial else ""
            label = (f"{disk.node.name:<8} {disk.model or '-'} ({serial}{disk.bus_name}, "
                     f"{human_size(disk.size)})")
            if disk.stable_id == wanted:
                label += "  [source of this image]"
            verdict = text.layout_verdict(candidate.plan) if candidate.plan else ""
            if verdict and not candidate.refusals:
                label += f"\n    {verdict} to fit this disk"
            if candidate.refusals:
                label += "\n    refused: " + "\n    refused: ".join(candidate.refusals)
            elif candidate.failing:
                label += f"\n    {candidate.failing} (you will be asked)"
            elif disk.health.needs_care:
                label += f"\n    health {disk.health.describe()}"
            options.add_option(PlainOption(label, id=str(disk.node),
                                      disabled=bool(candidate.refusals)))
        suggested = [i for i, c in enumerate(candidates)
                     if c.disk.stable_id == wanted and not c.refusals]
        # A failing disk can be chosen, but a healthy one is suggested first.
        usable = sorted((i for i, c in enumerate(candidates) if not c.refusals),
                        key=lambda i: bool(candidates[i].failing))
        kept = [i for i in usable if str(candidates[i].disk.node) == keep]
        if kept:
            options.highlighted = kept[0]
        elif suggested or usable:
            options.highlighted = (suggested or usable)[0]
            self.suggested_target = str(candidates[options.highlighted].disk.node)
        if not self.targets_checked:
            status = f"Checking disks… {len(candidates)} of {total}"
        elif not usable:
            status = "No disk can be restored to; the reasons are listed above."
        else:
            status = ""
        self.query_one("#target-details", Static).update(status)

    @on(OptionList.OptionSelected, "#targets")
    def target_chosen(self, event: OptionList.OptionSelected) -> None:
        self.target = next(c for c in self.candidates if str(c.disk.node) == event.option.id)
        self.query_one("#system-size", Input).value = ""  # this disk's own default plan
        self.query_one("#system-size-refusal", Static).update("")
        self.allow_failing = False
        if not self.target.failing:
            self.show_lost()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.allow_failing = True
                tui_app(self.app).log_file.write(
                    f"technician chose the failing disk anyway: {self.target_failing()}")
                self.show_lost()
        self.app.push_screen(ConfirmDialog(
            f"{self.target_failing()}\n\nThe restored Windows may not survive on it. Restore "
            "onto this disk anyway?", yes_label="Use this failing disk"), answered)

    def target_failing(self) -> str:
        return self.target.failing if self.target else ""

    def show_lost(self) -> None:
        assert self.target is not None
        disk = self.target_disk()
        lost = [f"{disk.describe()}  ({disk.node})", "Current partitions (all will be replaced):"]
        lost += [f"  {p.number}: {p.fs_type or 'unknown':<6} {p.fs_label or p.part_name:<16} "
                 f"{human_size(p.size)}" for p in disk.partitions] or ["  (none)"]
        plan = self.target.plan
        fitted = plan is not None and plan.layout is not None and plan.layout.mode == "fit"
        if plan is not None and fitted:
            lost += ["", *text.layout_lines(plan), *text.layout_bars(plan, 56)]
        self.query_one("#lost", Static).update("\n".join(lost))
        self.query_one("#system-size-choice").display = fitted
        delta = self.query_one("#delta", Checkbox)
        earlier_copy = self.image is not None and disk.stable_id == source_id(self.image)
        delta.display = earlier_copy
        delta.value = earlier_copy
        self.goto(3)

    # step 4: the size of Windows, confirm and run -----------------------------------------
    @on(Input.Submitted, "#system-size")
    def system_size_submitted(self, event: Input.Submitted) -> None:
        refusal = self.query_one("#system-size-refusal", Static)
        try:
            size = parse_size(event.value.strip()) if event.value.strip() else None
        except ValueError:
            refusal.update(f"'{event.value}' is not a size: type e.g. 300M or 1.5G.")
            return
        refusal.update("Planning…")
        self.replan(size)

    @work(thread=True, exclusive=True, group="plan")
    def replan(self, system_size: int | None) -> None:
        """The engine's plan for the chosen Windows size: what is shown is what runs."""
        assert self.store is not None and self.image is not None and self.target is not None
        disk = self.target.disk
        request = RestoreRequest(store=self.store, image=self.image.name, target=disk.node,
                                 layout=LayoutChoice(system_size=system_size))
        try:
            candidate = _candidate(disk, tui_app(self.app).backend.plan_restore(request))
        except RecoveryError as error:
            candidate = Candidate(disk, None, (tui_message(error),))
        self.app.call_from_thread(self.replanned, candidate)

    def replanned(self, candidate: Candidate) -> None:
        refusal = self.query_one("#system-size-refusal", Static)
        if candidate.refusals or candidate.plan is None:
            refusal.update("Refused, the plan above is unchanged: "
                           + " ".join(candidate.refusals))
            return
        self.target = candidate
        refusal.update("")
        self.show_lost()

    # step 4: confirm and run --------------------------------------------------------------
    @on(Button.Pressed, "#overwrite")
    def overwrite_pressed(self) -> None:
        assert self.target is not None
        disk = self.target_disk()
        prompt, expected = confirmation_code(disk)
        warning = (f"Everything on {disk.describe()} will be overwritten with image "
                   f"'{self.image.name if self.image else ''}'.")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.start()
        self.app.push_screen(TypeToConfirmDialog(warning, prompt, expected), confirmed)

    def target_disk(self) -> Disk:
        """The disk as the engine's plan saw it: what is shown and confirmed is what the
        plan (bound to this disk's identity) will write."""
        assert self.target is not None
        return self.target.plan.target if self.target.plan else self.target.disk

    def start(self) -> None:
        assert self.store is not None and self.image is not None and self.target is not None
        assert self.target.plan is not None  # refused candidates cannot be chosen
        disk = self.target_disk()
        delta = self.query_one("#delta", Checkbox)
        plan = self.target.plan.confirm(delta=bool(delta.display and delta.value),
                                        allow_failing=self.allow_failing)
        request = plan.request
        app = tui_app(self.app)
        writes = "only the chunks that differ" if request.delta else "every chunk"
        app.log_file.write(f"restore started: image {request.image} from {request.store} -> "
                           f"{disk.describe()} ({disk.node}), writing {writes}; "
                           "technician typed the confirmation")

        def job(events: EventSink, cancel: threading.Event) -> RestoreSummary:
            return app.backend.execute_restore(plan, events, cancel)
        hold = app.backend.hold_job(
            f"restore of image {request.image} to {disk.describe()} ({disk.node})", [disk.node])
        self.app.push_screen(JobScreen(f"Restoring {request.image} to {disk.describe()}", job,
                                       "restore", app.log_file, hold), self.finished)

    def finished(self, outcome: JobOutcome[RestoreSummary] | None) -> None:
        app = tui_app(self.app)
        summary = settle(app, outcome, "restore")
        if summary is None:
            return
        lines = restore_result_lines(summary)
        app.log_file.write("restore finished: " + " ".join(lines))
        self.dismiss(None)
        app.push_screen(ResultScreen("Restore finished", lines))
