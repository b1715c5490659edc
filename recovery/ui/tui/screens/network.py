"""The network in the TUI: the ports' state on the home screen, a static address typed
where no DHCP server answers, and image stores opened by URL (smb://, nfs://, ssh://).

A password is typed into a masked field and handed to the mount as a `Secret`: it is never
shown, never in the action log, never in an error. An SSH server whose host key is not
known yet is shown with its fingerprint, and trusted only when the technician says so.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static

from recovery.errors import Hint, RecoveryError
from recovery.model.netstore import Credentials, Secret, StoreURL, is_url, parse_url
from recovery.ui.tui.screens.dialogs import ConfirmDialog
from recovery.ui.tui.tuiapp import tui_app
from recovery.ui.tui.workers import shown_errors

if TYPE_CHECKING:
    from recovery.sys.network import Link

HOST_KEY_WAIT_SECONDS = 900.0  # an unanswered question counts as "no"
URL_FORMS = ("smb://[DOMAIN;]USER@SERVER/SHARE/PATH   nfs://SERVER/EXPORT/PATH   "
             "ssh://USER@SERVER[:PORT]/PATH")


def network_line(links: list[Link]) -> str:
    """One line for the home screen: every port's cable and address."""
    if not links:
        return "Network: no Ethernet port found (n: network)"
    return "Network: " + "; ".join(link.describe() for link in links) + " (n: network)"


def default_port(links: list[Link]) -> str:
    """The port a typed address goes to unless another is named: the first whose DHCP
    request nobody answers, else the first with a cable."""
    unanswered = [link for link in links if link.no_dhcp_answer]
    cabled = [link for link in links if link.carrier]
    return (unanswered or cabled or links)[0].name if links else ""


class StorePrompt(ModalScreen[str | None]):
    """A store's directory, or the URL of a store on a network share."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Directory or URL of the image store:", markup=False)
            yield Static(URL_FORMS, classes="hint", markup=False)
            yield Input(value="/mnt", id="store-location")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PasswordPrompt(ModalScreen[Secret | None]):
    """A password in a masked field; Escape: none. It is returned as a Secret only."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, note: str = "") -> None:
        super().__init__()
        self.question = question
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, markup=False)
            if self.note:
                yield Static(self.note, classes="hint", markup=False)
            yield Input(password=True, id="password")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        secret = Secret(event.value)
        event.input.value = ""  # nothing of it stays in the widget
        self.dismiss(secret)

    def action_cancel(self) -> None:
        self.dismiss(None)


class OpenStoreByURL:
    """URL -> password (SMB; SSH when no key is used) -> mount in a worker -> listed."""

    def __init__(self, screen: Screen[None], done: Callable[[Path], None]) -> None:
        self.screen = screen
        self.done = done

    def start(self, text: str) -> bool:
        """False when `text` is no URL (a directory: the caller handles it)."""
        if not is_url(text):
            return False
        try:
            url = parse_url(text)
        except RecoveryError as error:
            tui_app(self.screen.app).show_error(error)
            return True
        if url.scheme == "nfs":
            self.mount(url, Credentials())
            return True
        note = ("Leave it empty to log in with the SSH key in ~/.ssh." if url.scheme == "ssh"
                else "")

        def typed(password: Secret | None) -> None:
            if password is not None:
                self.mount(url, Credentials(password=password if password or
                                            url.scheme == "smb" else None))
        self.screen.app.push_screen(
            PasswordPrompt(f"Password for {url.user} on {url.server}:", note), typed)
        return True

    def mount(self, url: StoreURL, credentials: Credentials, create: bool = False) -> None:
        what = "creating a store at" if create else "opening store"
        tui_app(self.screen.app).log_file.write(f"{what} {url.display()}")
        self.screen.run_worker(lambda: self._mount(url, credentials, create), thread=True,
                               group="open-url")

    def _mount(self, url: StoreURL, credentials: Credentials, create: bool) -> None:
        """In a worker thread: a mount can wait for a slow server, a host key, a timeout."""
        app = tui_app(self.screen.app)
        try:
            path = app.backend.open_url(url, credentials, self.ask_host_key, create)
        except RecoveryError as error:
            if error.hint is Hint.NEW_STORE and not create:
                app.call_from_thread(self.offer_new_store, url, credentials, error)
            else:
                app.call_from_thread(app.show_error, error)
            return
        done = "store created" if create else "store opened"
        app.call_from_thread(app.log_file.write, f"{done}: {url.display()} on {path}")
        app.call_from_thread(self.done, path)

    def offer_new_store(self, url: StoreURL, credentials: Credentials,
                        error: RecoveryError) -> None:
        """As for a new USB drive: the technician confirms, then the store is made there
        (its folder too) and listed; the capture wizard then offers it."""
        question = (f"{error.title}\nCreate a new image store in that folder (the folder is "
                    "created if needed)?")

        def answered(yes: bool | None) -> None:
            if yes:
                self.mount(url, credentials, create=True)
        self.screen.app.push_screen(ConfirmDialog(question, yes_label="Create"), answered)

    def ask_host_key(self, server: str, fingerprint: str) -> bool:
        """Called in the worker: show the key on the UI thread and wait for the answer."""
        answers: queue.Queue[bool] = queue.Queue()
        question = (f"The SSH server {server} is not known yet. Its host key is\n"
                    f"  {fingerprint}\nCompare it with the key shown on the server "
                    "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). Trust it?")

        def show() -> None:
            self.screen.app.push_screen(ConfirmDialog(question, yes_label="Trust"),
                                        lambda yes: answers.put(bool(yes)))
        self.screen.app.call_from_thread(show)
        try:
            trusted = answers.get(timeout=HOST_KEY_WAIT_SECONDS)
        except queue.Empty:
            trusted = False
        self.screen.app.call_from_thread(
            tui_app(self.screen.app).log_file.write,
            f"SSH host key of {server} {fingerprint}: {'trusted' if trusted else 'refused'}")
        return trusted


class NetworkScreen(ModalScreen[None]):
    """The ports, and a static address for one of them (or back to DHCP)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, links: list[Link]) -> None:
        super().__init__()
        self.links = links

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Network", classes="dialog-title", markup=False)
            yield Static("\n".join(link.describe() for link in self.links)
                         or "No Ethernet port found.", id="links", markup=False)
            yield Label("Static address (where no DHCP server answers):", markup=False)
            yield Input(value=default_port(self.links), placeholder="port, e.g. enp3s0",
                        id="interface")
            yield Input(placeholder="address/prefix, e.g. 192.168.1.50/24", id="address")
            yield Input(placeholder="gateway (optional), e.g. 192.168.1.1", id="gateway")
            yield Input(placeholder="name servers (optional), e.g. 192.168.1.1", id="dns")
            yield Static("", id="network-result", markup=False)
            yield Button("Set address", id="set", variant="primary")
            yield Button("Back to DHCP", id="dhcp")
            yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#address", Input).focus()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.apply(dhcp=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "close":
            self.dismiss(None)
        else:
            self.apply(dhcp=event.button.id == "dhcp")

    def action_close(self) -> None:
        self.dismiss(None)

    def apply(self, dhcp: bool) -> None:
        from recovery.sys.network import pick_link, static_address
        value = {name: self.query_one(f"#{name}", Input).value
                 for name in ("address", "gateway", "dns")}
        try:
            link = pick_link(self.links, self.query_one("#interface", Input).value.strip())
            config = None if dhcp else static_address(link.name, value["address"],
                                                      value["gateway"], value["dns"])
        except RecoveryError as error:
            self.query_one("#network-result", Static).update(
                f"{error.title} {error.action}")
            return
        self.query_one("#network-result", Static).update("Setting the address…")
        self._apply_worker(link.name, config)

    @work(thread=True, exclusive=True, group="network")
    @shown_errors("setting the network address")
    def _apply_worker(self, interface: str, config: object) -> None:
        from recovery.sys.network import StaticAddress
        app = tui_app(self.app)
        if isinstance(config, StaticAddress):
            app.backend.set_static(config)
            done = f"{interface}: static address {config.address}"
        else:
            app.backend.use_dhcp(interface)
            done = f"{interface}: back to DHCP"
        app.call_from_thread(app.log_file.write, f"network: {done}")
        app.call_from_thread(self.query_one("#network-result", Static).update, done + ".")
