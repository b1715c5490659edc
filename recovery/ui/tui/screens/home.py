"""Home: the disks, the image stores and every action, reachable from the keyboard.

Disks come from udev and refresh on hot-plug; the refresh runs in a worker because listing
disks and probing stores touches devices that may be slow to answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Label, OptionList, Static

from recovery.errors import RecoveryError
from recovery.model.disk import Disk
from recovery.ui.tui.screens.dialogs import ConfirmDialog, ErrorDialog, PathPrompt
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.disk_table import DiskTable, row_details
from recovery.ui.tui.widgets.plain import PlainOption

if TYPE_CHECKING:
    # The engine behind these loads in the device worker, after the first screen is drawn.
    from recovery.ui.tui.backend import Watcher
    from recovery.ui.tui.stores import StoreLocation
    from recovery.ui.tui.volumes import PartKey, VolumeNotes

OPEN_STORE = "open-store"


class DevicesChanged(Message):
    """udev said a block device came or went (posted from the monitor thread)."""

    def __init__(self, action: str, node: str) -> None:
        super().__init__()
        self.action = action
        self.node = node


class HomeScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "capture", "Capture"),
        Binding("r", "restore", "Restore"),
        Binding("v", "verify", "Verify"),
        Binding("p", "restore_points", "Points"),
        # Also Enter on a store in the list (the footer has no room left at 80 columns).
        Binding("e", "explore", "Explore", show=False),
        Binding("l", "log", "Log"),
        Binding("s", "shell", "Shell"),
        Binding("b", "reboot", "Reboot"),
        Binding("o", "poweroff", "Power off"),
        Binding("a", "open_store", "Open store", show=False),
        Binding("f5", "refresh", "Refresh", show=False),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.disks: list[Disk] = []
        self.stores: list[StoreLocation] = []
        self.notes: dict[PartKey, VolumeNotes] = {}
        self.pending_refresh: Timer | None = None
        self.watcher: Watcher | None = None
        self.stale = False  # devices changed while another screen was on top

    def compose(self) -> ComposeResult:
        yield Header(icon=tui_app(self.app).HEADER_ICON)
        with Vertical(id="home"):
            yield Label("Disks", classes="section", markup=False)
            yield DiskTable(id="disks")
            yield Static("Looking for disks…", id="disk-details", classes="hint",
                         markup=False)
            yield Label("Image stores", classes="section", markup=False)
            yield OptionList(id="stores")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DiskTable).focus()
        self.refresh_devices(start_watching=True)

    def device_event(self, action: str, node: str) -> None:
        """Called on the udev monitor's thread; post_message is thread-safe."""
        self.post_message(DevicesChanged(action, node))

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    @work(thread=True, exclusive=True, group="devices")
    def refresh_devices(self, start_watching: bool = False) -> None:
        backend = tui_app(self.app).backend
        if start_watching:
            self.watcher = backend.watch(self.device_event)
        try:
            disks = backend.disks()
            stores = backend.stores(disks, look_unmounted=False)
        except RecoveryError as error:
            self.app.call_from_thread(self.app.push_screen, ErrorDialog(error))
            return
        self.app.call_from_thread(self.show_devices, disks, stores, {})
        # Mounting partitions to look for stores and probing volumes read the disks: show
        # the list first, then add what they found.
        found = backend.stores(disks)
        notes = backend.volume_notes(disks)
        if notes or found != stores:
            self.app.call_from_thread(self.show_devices, disks, found, notes)

    def show_devices(self, disks: list[Disk], stores: list[StoreLocation],
                     notes: dict[PartKey, VolumeNotes]) -> None:
        self.disks, self.stores, self.notes = disks, stores, notes
        self.query_one(DiskTable).show(disks, {k: n.tags for k, n in notes.items()})
        options = self.query_one("#stores", OptionList)
        keep = options.highlighted or 0
        options.clear_options()
        for store in stores:
            options.add_option(PlainOption(store.describe(), id=str(store.path)))
        options.add_option(PlainOption("Open a store at a path… (a)", id=OPEN_STORE))
        options.highlighted = min(keep, options.option_count - 1)
        if disks:
            self.row_highlighted()
        else:
            self.query_one("#disk-details", Static).update(
                "No disks found. Plug one in: it appears here.")

    @on(DataTable.RowHighlighted, "#disks")
    def row_highlighted(self) -> None:
        key = self.query_one(DiskTable).selected_key()
        details = row_details(key, self.disks)
        for (node, number), notes in self.notes.items():
            if key == f"part:{node}:{number}" and notes.sentences:
                details += " " + " ".join(notes.sentences)
        self.query_one("#disk-details", Static).update(details)

    def on_devices_changed(self, message: DevicesChanged) -> None:
        tui_app(self.app).log_file.write(f"udev: {message.action} {message.node}")
        if not self.is_current:
            # Listing may mount partitions to look for stores: never while a wizard or a
            # restore runs (the disk being written shows new partitions as it goes).
            self.stale = True
            return
        # One plug-in brings a burst of events (disk, partitions, change): list once.
        if self.pending_refresh is not None:
            self.pending_refresh.stop()
        self.pending_refresh = self.set_timer(0.3, self.refresh_devices)

    def back_home(self, _result: None) -> None:
        self.refresh_devices()

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.refresh_devices()

    def selected_disk(self) -> Disk | None:
        node = self.query_one(DiskTable).selected_node()
        return next((d for d in self.disks if d.node == node), None)

    def selected_store(self) -> Path | None:
        options = self.query_one("#stores", OptionList)
        index = options.highlighted
        if index is not None:
            option_id = options.get_option_at_index(index).id
            if option_id and option_id != OPEN_STORE:
                return Path(option_id)
        return self.stores[0].path if self.stores else None

    @on(OptionList.OptionSelected, "#stores")
    def store_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == OPEN_STORE:
            self.action_open_store()
        elif event.option.id:
            self.action_explore()

    def action_open_store(self) -> None:
        self.app.push_screen(PathPrompt("Directory of the image store:"), self._opened)

    def _opened(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            tui_app(self.app).backend.open_store(path)
        except RecoveryError as error:
            self.app.push_screen(ErrorDialog(error))
            return
        tui_app(self.app).log_file.write(f"store opened: {path}")
        self.refresh_devices()

    def action_refresh(self) -> None:
        self.refresh_devices()

    def action_capture(self) -> None:
        from recovery.ui.tui.screens.capture import CaptureWizard
        self.app.push_screen(CaptureWizard(self.disks, self.stores, self.selected_disk()),
                             self.back_home)

    def action_restore(self) -> None:
        from recovery.ui.tui.screens.restore import RestoreWizard
        self.app.push_screen(RestoreWizard(self.disks, self.stores, self.selected_store()),
                             self.back_home)

    def action_verify(self) -> None:
        from recovery.ui.tui.screens.verify import VerifyScreen
        self.app.push_screen(VerifyScreen(self.disks, self.stores, self.selected_store()))

    def action_explore(self) -> None:
        from recovery.ui.tui.screens.explore import ExploreScreen
        self.app.push_screen(ExploreScreen(self.stores, self.selected_store()))

    def action_restore_points(self) -> None:
        from recovery.ui.tui.screens.points import RestorePointsScreen
        self.app.push_screen(RestorePointsScreen(self.disks))

    def action_log(self) -> None:
        from recovery.ui.tui.screens.log import LogScreen
        self.app.push_screen(LogScreen(self.stores))

    def action_shell(self) -> None:
        tui_app(self.app).open_shell()

    def action_reboot(self) -> None:
        self._power("reboot", "Reboot the PC now?")

    def action_poweroff(self) -> None:
        self._power("poweroff", "Power off the PC now?")

    def _power(self, action: str, question: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                tui_app(self.app).power(action)
        self.app.push_screen(ConfirmDialog(question, yes_label=action.capitalize()), answered)
