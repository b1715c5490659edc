"""Restore points: pick the Windows volume → its points (time, source, description, hive
health) → a point's details and diff against the current hives → roll back with
confirmation → result. Undo lists earlier rollbacks and puts one back.

Every engine call runs in a worker; the registry engine mounts and copies hives, which can
take seconds on a slow disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, Footer, Label, OptionList, Static

from recovery.model.disk import Disk
from recovery.registry.inspect import PointReport, PointsReport
from recovery.registry.rollback import RollbackRequest, RollbackSummary, UndoRequest, UndoSummary
from recovery.registry.undo import UndoRecord, record_made
from recovery.ui.tui.screens.dialogs import ConfirmDialog, PathPrompt
from recovery.ui.tui.screens.job import JobOutcome, JobScreen, settle
from recovery.ui.tui.screens.result import ResultScreen
from recovery.ui.tui.screens.wizard import Wizard, key_hint
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.plain import PlainOption
from recovery.ui.tui.workers import shown_errors
from recovery.units import human_size

OPEN_VOLUME = "open-volume"
Volume = tuple[Path, int | None]  # what locate_volume takes: disk + partition, or a path


def point_line(report: PointsReport, index: int) -> str:
    point = report.listing.points[index]
    when = point.created.strftime("%Y-%m-%d %H:%M")
    hives = " ".join(f"{name}:{check.status}" for name, check in point.hives.items())
    return f"{point.id:<10} {when} {point.source:<7} {point.description or ''}\n    {hives}"


def replaced_names(record: UndoRecord) -> str:
    return ", ".join(f.path.rsplit("/", 1)[-1] for f in record.files)


def point_details(report: PointReport) -> list[str]:
    point = report.point
    lines = [f"Point {point.id} ({point.source}) of {point.created:%Y-%m-%d %H:%M} UTC",
             f"Volume: {report.volume.describe()}", "Hives in the point:"]
    for name, check in point.hives.items():
        current = report.current.get(name)
        lines.append(f"  {name:<9} {check.status:<8} {human_size(check.size):>9}"
                     f"   now: {current.status if current else 'missing'}"
                     + (f"  ({check.problem})" if check.problem else ""))
    lines += unreadable_current(report)
    for name, diff in report.diffs.items():
        current = report.current.get(name)
        if current is None or not current.usable:
            continue  # read as empty, it would list every key and service as removed
        if not diff.counts:  # was "Diff SAM:" and nothing after it, on tty1
            lines.append(f"{name}: the same as in the point (no key added, removed or "
                         "changed since).")
            continue
        counts = ", ".join(f"{top} {sum(n.values())}" for top, n in diff.counts.items())
        lines.append(f"{name}: keys changed since the point, by top key: {counts}")
        lines += [f"  service added since the point: {s}" for s in diff.services_added[:8]]
        lines += [f"  service removed since the point: {s}" for s in diff.services_removed[:8]]
    return lines


def unreadable_current(report: PointReport) -> list[str]:
    """Sentences for the hives that cannot be compared: the current one is unreadable."""
    lines = []
    for name, check in report.point.hives.items():
        current = report.current.get(name)
        if current is not None and current.usable:
            continue
        state = current.status if current is not None else "missing"
        why = f" ({current.problem})" if current is not None and current.problem else ""
        lines.append(f"The current {name} hive cannot be read: {state}{why}. There is nothing "
                     "to compare it with; a rollback puts back the point's copy "
                     + (f"({human_size(check.size)}, {check.keys} keys, {check.status})."
                        if check.usable else f"only if it is usable (it is {check.status})."))
    return lines


def record_time(record: str) -> str:
    """When a rollback was made, from its undo record's id (a UTC time stamp): the words a
    technician finds it by in the undo list."""
    made = record_made(record)
    return f"{made:%Y-%m-%d %H:%M:%S} UTC" if made else record


def rollback_result_lines(summary: RollbackSummary, volume: str, point: str,
                          point_time: str = "") -> list[str]:
    names = ", ".join(path.rsplit("/", 1)[-1] for path in summary.replaced) or "no hive"
    of = f" of {point_time}" if point_time else ""
    lines = [f"The registry of {volume} was rolled back to restore point {point}{of}.",
             f"Put back from the point{of}: {names} "
             f"({human_size(summary.bytes_written)} written)."]
    lines.append("Checked: every file written was read back from the volume and matches the "
                 "point's copy." if summary.verified else
                 "Warning: reading the written files back did not match the point's copy; "
                 "see the log (l) before restarting Windows.")
    lines.append("The hives it replaced were saved on the volume first; to put them back, "
                 "open this volume here again, press u (Undo) and choose the rollback of "
                 f"{record_time(summary.record)}.")
    if summary.exported_points:
        lines.append(f"Copies of the restore points ({', '.join(summary.exported_points)}) "
                     "were saved with them, in case Windows deletes its own.")
    lines.append("Next: remove the recovery stick and restart the PC from its own disk.")
    return lines


def undo_result_lines(summary: UndoSummary, volume: str) -> list[str]:
    names = ", ".join(path.rsplit("/", 1)[-1] for path in summary.restored) or "no hive"
    return [f"The rollback of {record_time(summary.record)} (to point {summary.point}) on "
            f"{volume} was undone.",
            f"Put back as they were before it: {names}.",
            "Checked: every file put back was read back and matches its saved copy."
            if summary.verified else
            "Warning: reading the files back did not match their saved copies; see the log.",
            "Next: restart the PC from its own disk."]


class RestorePointsScreen(Wizard):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"), Binding("r", "rollback", "Roll back"),
        Binding("k", "diff_key", "Diff a key"), Binding("u", "undo_list", "Undo")]
    STEPS: ClassVar[list[tuple[str, str]]] = [
        ("points-volume", "volumes"), ("points-list", "points"),
        ("points-detail", "point-detail"), ("points-undo", "undo-records")]

    def __init__(self, disks: list[Disk]) -> None:
        super().__init__()
        self.disks = disks
        self.volume: Volume | None = None
        self.report: PointsReport | None = None
        self.point_id = ""
        self.records: list[UndoRecord] = []

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial=self.STEPS[0][0], classes="wizard"):
            with Vertical(id="points-volume"):
                yield Label("Restore points 1/3: Windows volume", classes="screen-title",
                            markup=False)
                yield OptionList(*self.volume_options(), id="volumes")
                yield key_hint()
            with Vertical(id="points-list"):
                yield Label("Restore points 2/3: choose a point", classes="screen-title",
                            markup=False)
                yield OptionList(id="points")
                yield Static("", id="points-notes", classes="hint", markup=False)
                yield key_hint("Enter: compare with the current hives   Escape: back")
            with VerticalScroll(id="points-detail"):
                yield Label("Restore points 3/3: r roll back, k diff a key",
                            classes="screen-title", markup=False)
                yield Static("", id="point-detail", markup=False)
            with Vertical(id="points-undo"):
                yield Label("Undo: earlier rollbacks on this volume", classes="screen-title",
                            markup=False)
                yield OptionList(id="undo-records")
                yield key_hint("Enter: put back what this rollback replaced   Escape: back")
        yield Static("", id="points-status", classes="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        volumes = self.query_one("#volumes", OptionList)
        volumes.highlighted = 0
        volumes.focus()
        self.query_one("#point-detail").can_focus = True

    def volume_options(self) -> list[PlainOption]:
        options = []
        for disk in self.disks:
            for part in disk.partitions:
                if part.fs_type.lower() == "ntfs":
                    options.append(PlainOption(
                        f"{disk.node.name} partition {part.number}: {part.fs_label or 'NTFS'} "
                        f"{human_size(part.size)} on {disk.model or disk.node}",
                        id=f"{disk.node}#{part.number}"))
        options.append(PlainOption("Open a volume, disk or image file at a path…", id=OPEN_VOLUME))
        return options

    def status(self, text: str) -> None:
        self.query_one("#points-status", Static).update(text)

    # step 1: volume -----------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#volumes")
    def volume_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == OPEN_VOLUME:
            self.app.push_screen(PathPrompt("Windows volume, disk or image file:", "/dev/"),
                                 self.volume_opened)
            return
        node, number = str(event.option.id).rsplit("#", 1)
        self.load_points((Path(node), int(number)))

    def volume_opened(self, path: Path | None) -> None:
        if path is not None:
            self.load_points((path, None))

    @work(thread=True, exclusive=True, group="points")
    @shown_errors("reading the restore points")
    def load_points(self, volume: Volume) -> None:
        app = tui_app(self.app)
        app.call_from_thread(self.status, "Reading restore points…")
        try:
            report = app.backend.restore_points(*volume)
        finally:
            app.call_from_thread(self.status, "")
        app.call_from_thread(self.show_points, volume, report)

    def show_points(self, volume: Volume, report: PointsReport) -> None:
        self.volume, self.report = volume, report
        options = self.query_one("#points", OptionList)
        options.clear_options()
        options.add_options([PlainOption(point_line(report, i), id=p.id)
                             for i, p in enumerate(report.listing.points)])
        if report.listing.points:
            options.highlighted = 0
        notes = list(report.listing.notes) or ["No restore points found on this volume."
                                               if not report.listing.points else ""]
        self.query_one("#points-notes", Static).update("\n".join(notes))
        self.status(report.volume.describe())
        self.goto(1)

    # step 2: point ------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#points")
    def point_chosen(self, event: OptionList.OptionSelected) -> None:
        self.point_id = str(event.option.id)
        self.load_point()

    @work(thread=True, exclusive=True, group="points")
    @shown_errors("comparing the restore point with the current hives")
    def load_point(self) -> None:
        assert self.volume is not None
        app = tui_app(self.app)
        app.call_from_thread(self.status, f"Comparing {self.point_id} with the current hives…")
        try:
            report = app.backend.show_point(self.volume[0], self.point_id, self.volume[1])
        finally:
            app.call_from_thread(self.status, "")
        app.call_from_thread(self.show_detail, point_details(report))

    def show_detail(self, lines: list[str]) -> None:
        self.query_one("#point-detail", Static).update("\n".join(lines))
        self.status("")
        self.goto(2)

    def action_diff_key(self) -> None:
        if self.step != 2:
            return
        self.app.push_screen(PathPrompt("Hive and key, e.g. SYSTEM\\ControlSet001\\Services:",
                                        "SYSTEM\\ControlSet001\\Services"), self.diff_key)

    def diff_key(self, text: Path | None) -> None:
        if text is not None:
            hive, _, key = str(text).partition("\\")
            self.run_diff(hive, key or None)

    @work(thread=True, exclusive=True, group="points")
    @shown_errors("comparing the key with the restore point")
    def run_diff(self, hive: str, key: str | None) -> None:
        assert self.volume is not None
        diff = tui_app(self.app).backend.diff_point(self.volume[0], self.point_id, hive, key,
                                                    self.volume[1])
        # Problems first: with an unreadable current hive, "removed" below means "not
        # readable now", and a rollback puts back the point's whole hive.
        lines = [f"Problem: {p}" for p in diff.problems]
        if diff.problems:
            lines.append(f"Below, keys of the point missing from what can be read of the "
                         f"current hive; a rollback puts back the point's whole {hive}.")
        lines.append(f"{hive}\\{key or ''}: changes since point {self.point_id}")
        lines += [f"  {c.change:<8} {c.path}" + (f"  ({', '.join(c.values)})" if c.values
                                                 else "") for c in diff.changes[:200]]
        if not diff.changes:
            lines.append("  no differences")
        self.app.call_from_thread(self.app.push_screen,
                                  ResultScreen(f"Diff of {hive}", lines))

    # roll back ----------------------------------------------------------------------------
    def action_rollback(self) -> None:
        if self.step != 2 or self.volume is None:
            return
        volume, point = self.volume, self.point_id
        backend = tui_app(self.app).backend

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_engine(f"Rolling back to {point}", "rollback", lambda events, _c:
                                backend.rollback(RollbackRequest(volume=volume[0], point=point,
                                                                 partition=volume[1],
                                                                 confirmed=True), events))
        self.app.push_screen(ConfirmDialog(
            f"Replace the usable hives of this Windows volume with those of restore point "
            f"{point}? The current hives are saved first; Undo (u) puts them back.",
            yes_label="Roll back"), answered)

    # undo ---------------------------------------------------------------------------------
    def action_undo_list(self) -> None:
        if self.volume is not None and self.step in (1, 2):
            self.load_history()

    @work(thread=True, exclusive=True, group="points")
    @shown_errors("reading the earlier rollbacks")
    def load_history(self) -> None:
        assert self.volume is not None
        records = tui_app(self.app).backend.rollback_history(*self.volume)
        self.app.call_from_thread(self.show_history, records)

    def show_history(self, records: list[UndoRecord]) -> None:
        self.records = records
        options = self.query_one("#undo-records", OptionList)
        options.clear_options()
        options.add_options([PlainOption(f"Rollback of {record_time(r.id)} to point "
                                         f"{r.point.get('id')}  [{r.state}]\n    "
                                         f"{replaced_names(r)}",
                                         id=r.id, disabled=r.state != "applied")
                             for r in records])
        applied = [i for i, r in enumerate(records) if r.state == "applied"]
        if applied:
            options.highlighted = applied[0]
        self.status("" if records else "No rollback has been made on this volume.")
        self.goto(3)

    @on(OptionList.OptionSelected, "#undo-records")
    def record_chosen(self, event: OptionList.OptionSelected) -> None:
        assert self.volume is not None
        volume, record = self.volume, str(event.option.id)
        backend = tui_app(self.app).backend

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_engine(f"Undoing the rollback of {record_time(record)}", "undo",
                                lambda events, _c:
                                backend.undo(UndoRequest(volume=volume[0], record=record,
                                                         partition=volume[1], confirmed=True),
                                             events))
        self.app.push_screen(ConfirmDialog(f"Put back the hives the rollback of "
                                           f"{record_time(record)} replaced?",
                                           yes_label="Undo"), answered)

    def volume_name(self) -> str:
        if self.report is not None:
            return self.report.volume.describe()
        return str(self.volume[0]) if self.volume else ""

    def point_time(self) -> str:
        """When the chosen point was made, as listed."""
        points = self.report.listing.points if self.report else []
        made = next((p.created for p in points if p.id == self.point_id), None)
        return f"{made:%Y-%m-%d %H:%M} UTC" if made else ""

    def run_engine(self, title: str, what: str, job: object) -> None:
        assert self.volume is not None
        app = tui_app(self.app)
        app.log_file.write(f"{what} started: {title} on {self.volume_name()}")
        hold = app.backend.hold_job(f"{what} on {self.volume[0]}", [self.volume[0]])
        self.app.push_screen(JobScreen(title, job, what, app.log_file,  # type: ignore[arg-type]
                                       hold), lambda outcome: self.engine_done(what, outcome))

    def engine_done(self, what: str,
                    outcome: JobOutcome[RollbackSummary | UndoSummary] | None) -> None:
        app = tui_app(self.app)
        summary = settle(app, outcome, what)
        if summary is None:
            return
        volume = self.volume_name()
        if isinstance(summary, RollbackSummary):
            lines = rollback_result_lines(summary, volume, self.point_id, self.point_time())
        else:
            lines = undo_result_lines(summary, volume)
        # The record's id for the ticket: `recovery restore-points undo` takes it.
        app.log_file.write(f"{what} finished (undo record {summary.record}): "
                           + " ".join(lines))
        self.goto(0)
        app.push_screen(ResultScreen(f"{what.capitalize()} finished", lines,
                                     ok=summary.verified))
