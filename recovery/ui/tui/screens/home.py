"""Home: the disks, the image stores and every action, reachable from the keyboard.

Disks come from udev and refresh on hot-plug; the refresh runs in a worker because listing
disks and probing stores touches devices that may be slow to answer.

Both consoles run this screen at once. While a job runs on the other one (or in the
unattended service, or the CLI) a line at the top says what it is doing, and the job keys
say why they do nothing instead of opening a wizard (recovery.sys.joblock).
"""

from __future__ import annotations

import gc
import os
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
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.widgets.disk_table import DiskTable, row_details
from recovery.ui.tui.widgets.plain import PlainOption
from recovery.ui.tui.workers import shown_errors

if TYPE_CHECKING:
    # The engine behind these loads in the device worker, after the first screen is drawn.
    from recovery.engine.storescan import StoreLocation
    from recovery.engine.volumes import PartKey, VolumeNotes
    from recovery.model.disk import Disk
    from recovery.sys.joblock import JobHolder
    from recovery.sys.network import Link
    from recovery.ui.tui.backend import Watcher

OPEN_STORE = "open-store"
JOB_POLL_SECONDS = 2.0  # how often the idle console looks whether the other one runs a job
NETWORK_POLL_SECONDS = 5.0  # a cable plugged in, a DHCP answer: shown within this


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
        Binding("n", "network", "Network", show=False),
        Binding("f5", "refresh", "Refresh", show=False),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.disks: list[Disk] = []
        self.stores: list[StoreLocation] = []
        self.notes: dict[PartKey, VolumeNotes] = {}
        self.health_logged: dict[Path, str] = {}  # node -> the health last written to the log
        self.pending_refresh: Timer | None = None
        self.watcher: Watcher | None = None
        self.stale = False  # devices changed while another screen was on top
        self.polls: list[Timer] = []  # the job lock and the network, while home is shown
        self.polls_paused = False
        self.other_job: JobHolder | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon=tui_app(self.app).HEADER_ICON)
        with Vertical(id="home"):
            yield Static("", id="other-job", classes="refusal", markup=False)
            yield Label("Disks", classes="section", markup=False)
            yield DiskTable(id="disks")
            yield Static("Looking for disks…", id="disk-details", classes="hint",
                         markup=False)
            yield Label("Image stores", classes="section", markup=False)
            yield OptionList(id="stores")
            yield Static("", id="network", classes="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DiskTable).focus()
        self.query_one("#network", Static).display = False
        # The workers (the engine's imports, udev, smartctl, the network) start once the
        # first frame is on screen: started here, their threads took the interpreter from
        # the first layout and paint for seconds on a slow CPU (boot time, issue 14).
        self.call_after_refresh(self.start_workers)

    def start_workers(self) -> None:
        if not gc.isenabled():  # `recovery tui` starts without it (recovery.ui.entry)
            gc.freeze()  # what the start loaded stays: later collections skip it
            gc.enable()
        self.refresh_devices()
        self.start_watching()
        self.look_at_network()
        self.polls = [self.set_interval(JOB_POLL_SECONDS, self.look_for_job),
                      self.set_interval(NETWORK_POLL_SECONDS, self.look_at_network)]

    def device_event(self, action: str, node: str) -> None:
        """Called on the udev monitor's thread; post_message is thread-safe."""
        self.post_message(DevicesChanged(action, node))

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    @work(thread=True, group="watch")
    @shown_errors("watching for drives being plugged in")
    def start_watching(self) -> None:
        """Its own start-up step: the first listing does not wait for the monitor, and a
        monitor that fails to start is reported without hiding the disks."""
        self.watcher = tui_app(self.app).backend.watch(self.device_event)

    @work(thread=True, exclusive=True, group="job-lock")
    @shown_errors("looking for a job on the other console")
    def look_for_job(self) -> None:
        holder = tui_app(self.app).backend.job_holder()
        if holder != self.other_job:
            self.app.call_from_thread(self.show_other_job, holder)

    def show_other_job(self, holder: JobHolder | None) -> None:
        if holder is not None and holder.pid == os.getpid():
            holder = None  # our own job: its progress screen says it all
        was, self.other_job = self.other_job, holder
        banner = self.query_one("#other-job", Static)
        banner.display = holder is not None
        if holder is not None:
            banner.update(f"Busy: {holder.describe()}. Jobs wait until it ends.")
            tui_app(self.app).log_file.write(f"another job runs: {holder.describe()}")
        elif was is not None:
            tui_app(self.app).log_file.write(f"the other job ended: {was.describe()}")
            self.refresh_devices()  # the scan skipped what that job was writing

    @work(thread=True, exclusive=True, group="network-state")
    @shown_errors("looking at the network ports")
    def look_at_network(self) -> None:
        links = tui_app(self.app).backend.links()
        if links is not None:
            self.app.call_from_thread(self.show_network, links)

    def show_network(self, links: list[Link]) -> None:
        from recovery.ui.tui.screens.network import network_line
        if not self.query("#network"):
            return  # the app is closing
        line = self.query_one("#network", Static)
        line.display = True
        line.update(network_line(links))

    def action_network(self) -> None:
        from recovery.ui.tui.screens.network import NetworkScreen
        links = tui_app(self.app).backend.links() or []
        self.app.push_screen(NetworkScreen(links), self.network_closed)

    def network_closed(self, _result: None) -> None:
        self.look_at_network()

    @work(thread=True, exclusive=True, group="devices")
    @shown_errors("listing the disks")
    def refresh_devices(self) -> None:
        backend = tui_app(self.app).backend
        disks = backend.disks()
        stores = backend.stores(disks, look_unmounted=False)
        self.app.call_from_thread(self.show_devices, disks, stores, {})
        # smartctl, mounting partitions to look for stores and probing volumes read the
        # disks: show the list first, then add what they found.
        checked = backend.with_health(disks)
        if checked is not disks:
            self.app.call_from_thread(self.show_devices, checked, stores, {})
        found = backend.stores(checked)
        notes = backend.volume_notes(checked)
        if notes or found != stores:
            self.app.call_from_thread(self.show_devices, checked, found, notes)

    def show_devices(self, disks: list[Disk], stores: list[StoreLocation],
                     notes: dict[PartKey, VolumeNotes]) -> None:
        self.log_changes(disks, stores)
        self.disks, self.stores, self.notes = disks, stores, notes
        # Here, not at the top: the wizards load the engine, which the first frame waits for.
        from recovery.ui.tui.screens.wizard import Wizard
        for screen in self.app.screen_stack:
            if isinstance(screen, Wizard):  # opened before this listing ended
                screen.stores_found(stores)
        if not self.query(DiskTable) or not self.query("#stores"):
            return  # a late worker result while the app closes: the widgets are gone
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

    def log_changes(self, disks: list[Disk], stores: list[StoreLocation]) -> None:
        """Device events reach the log only as what they changed on screen."""
        from recovery.model.health import NOT_CHECKED
        log = tui_app(self.app).log_file
        before = {d.node: d for d in self.disks}
        after = {d.node: d for d in disks}
        if self.disks or self.stores:
            for node in after.keys() - before.keys():
                log.write(f"disk appeared: {after[node].describe()} ({node})")
            for node in before.keys() - after.keys():
                log.write(f"disk gone: {before[node].describe()} ({node})")
        # Each listing reads SMART again (smartctl's command lines are logged only with
        # --verbose, they drowned the technician's actions): a disk's health once, and
        # again when it changes.
        for node, disk in after.items():
            health = disk.health.describe()
            if disk.health != NOT_CHECKED and self.health_logged.get(node) != health:
                self.health_logged[node] = health
                log.write(f"disk health: {disk.describe()} ({node}): {health}")
        for path in {s.path for s in stores} - {s.path for s in self.stores}:
            log.write(f"image store found: {path}")
        for path in {s.path for s in self.stores} - {s.path for s in stores}:
            log.write(f"image store gone: {path}")

    def on_devices_changed(self, message: DevicesChanged) -> None:
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

    def on_screen_suspend(self) -> None:
        """No polling under another screen: each poll redrew the whole screen on top (the
        console's screens have no opaque background, so home counts as visible below),
        every 2 s, the CPU an old PC or a TCG guest needs for the wizard in front."""
        for poll in self.polls:
            poll.pause()
        self.polls_paused = True

    def on_screen_resume(self) -> None:
        if self.polls_paused:
            self.polls_paused = False
            for poll in self.polls:
                poll.resume()
            self.look_for_job()
            self.look_at_network()
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
        from recovery.ui.tui.screens.network import StorePrompt
        self.app.push_screen(StorePrompt(), self._opened)

    def _opened(self, text: str | None) -> None:
        if text is None:
            return
        from recovery.ui.tui.screens.network import OpenStoreByURL
        if OpenStoreByURL(self, self.url_opened).start(text):
            return
        path = Path(text)
        try:
            tui_app(self.app).backend.open_store(path)
        except RecoveryError as error:
            tui_app(self.app).show_error(error)
            return
        tui_app(self.app).log_file.write(f"store opened: {path}")
        self.refresh_devices()

    def url_opened(self, _path: Path) -> None:
        self.refresh_devices()

    def action_refresh(self) -> None:
        self.refresh_devices()

    def busy(self) -> bool:
        """True (after saying why) while another console or program runs a job."""
        if self.other_job is None:
            return False
        self.notify(f"Another job is running: {self.other_job.describe()}. Wait for it to "
                    "finish; its console shows the progress.", severity="warning", timeout=8)
        return True

    def action_capture(self) -> None:
        if self.busy():
            return
        from recovery.ui.tui.screens.capture import CaptureWizard
        self.app.push_screen(CaptureWizard(self.disks, self.stores, self.selected_disk()),
                             self.back_home)

    def action_restore(self) -> None:
        if self.busy():
            return
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
        if self.busy():
            return
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
        from recovery.ui.tui.screens.dialogs import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if yes:
                tui_app(self.app).power(action)
        self.app.push_screen(ConfirmDialog(question, yes_label=action.capitalize()), answered)
