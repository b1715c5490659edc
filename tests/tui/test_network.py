"""The network in the TUI: the ports' state on the home screen, a typed static address,
stores opened by URL with a masked password, an unknown SSH host key shown and asked.

The SSH store is opened through a real sshd on 127.0.0.1 (tests/netstore). SMB and NFS go
up to the mount, which fails here (the host kernel has no cifs or NFS client): what is
checked is the prompt, the error shown and that the password is nowhere.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, ParamSpec

import pytest
from textual.widgets import Button, Input, Static

from recovery.demo.disk import DemoDisk
from recovery.store.objects import MARKER, ChunkStore
from recovery.store.remote import NET_ROOT
from recovery.sys.network import Link, StaticAddress, wired_links
from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.dialogs import ConfirmDialog, ErrorDialog
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.network import NetworkScreen, PasswordPrompt, network_line
from tests.netstore.servers import TEST_USER, SshServer, make_ssh_server, served
from tests.tui.conftest import HANDMADE, SIZE, asynctest, wait_for
from tests.tui.test_flows import _capture, windows_loop  # noqa: F401

SECRETS = Path("/run/recovery/secrets")
P = ParamSpec("P")
# A hang guard, not a timing: a real sshd, ssh-keyscan and sshfs on a loaded machine.
SERVER_LIMIT_SECONDS = 300


def server_test(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), SERVER_LIMIT_SECONDS))
    return run


PORTS = [Link("enp3s0", "52:54:00:12:34:56", True, ("192.168.1.20/24",)),
         Link("enx001122334455", "00:11:22:33:44:55", False, ())]



class AddressRecorder(Backend):
    """Giving the test machine an address is not an option: the typed configuration is
    recorded here (the live image applies it for real: tests/e2e/test_netstore.py)."""

    applied: list[object]

    def set_static(self, config: StaticAddress) -> None:
        self.applied.append(config)

    def use_dhcp(self, interface: str) -> None:
        self.applied.append(interface)


def recorded(action_log: ActionLog, **kwargs: object) -> RecoveryApp:
    backend = AddressRecorder(udev_source=RecordedUdev(HANDMADE), network=lambda: PORTS,
                              **kwargs)  # type: ignore[arg-type]
    backend.applied = []
    return RecoveryApp(backend, action_log)


def shown(app: RecoveryApp) -> str:
    """Every text on the screen (and the screens below it)."""
    return " | ".join(str(w.render()) for screen in app.screen_stack
                      for w in screen.query("Static, Label, Input"))


@asynctest
async def test_home_shows_this_machines_ports_as_recovery_network_does(
        action_log: ActionLog) -> None:
    app = RecoveryApp(Backend(hotplug=False), action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen) and bool(
            str(app.screen.query_one("#network", Static).render())), "the network line")
        line = str(app.screen.query_one("#network", Static).render())
        assert line == network_line(wired_links(quiet=True))
        assert line.startswith("Network: ")
    # Looked at every few seconds: the action log keeps to what the technician did.
    assert "ip -j addr show" not in app.log_file.text()


@asynctest
async def test_home_shows_cable_and_address_of_each_port(action_log: ActionLog) -> None:
    app = recorded(action_log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "enp3s0" in shown(app), "the network line")
        line = str(app.screen.query_one("#network", Static).render())
        assert "enp3s0: 192.168.1.20/24" in line and "enx001122334455: no cable" in line


@asynctest
async def test_static_address_is_checked_then_set_and_dhcp_comes_back(
        action_log: ActionLog) -> None:
    app = recorded(action_log)
    backend = app.backend
    assert isinstance(backend, AddressRecorder)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")
        await pilot.press("n")
        assert isinstance(app.screen, NetworkScreen)
        assert app.screen.query_one("#interface", Input).value == "enp3s0"  # has a cable
        await pilot.press(*"192.168.1.0/24", "enter")
        await wait_for(pilot, lambda: "network's own" in shown(app), "the refusal")
        assert backend.applied == []
        await pilot.press("ctrl+a", "ctrl+k", *"192.168.1.50/24", "tab", *"10.0.0.1",
                          "enter")
        await wait_for(pilot, lambda: "not in the network" in shown(app), "gateway refusal")
        await pilot.press("ctrl+a", "ctrl+k", *"192.168.1.1", "tab", *"192.168.1.2", "enter")
        await wait_for(pilot, lambda: bool(backend.applied), "the address applied")
        assert backend.applied == [StaticAddress("enp3s0", "192.168.1.50/24", "192.168.1.1",
                                                 ("192.168.1.2",))]
        await wait_for(pilot, lambda: "static address 192.168.1.50/24" in shown(app),
                       "the result")
        app.screen.query_one("#dhcp", Button).press()
        await wait_for(pilot, lambda: backend.applied[-1] == "enp3s0", "back to DHCP")
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
    assert "network: enp3s0: static address 192.168.1.50/24" in app.log_file.text()


def test_static_address_network_file_takes_the_port_over() -> None:
    text = StaticAddress("enp3s0", "192.168.1.50/24", "192.168.1.1",
                         ("192.168.1.2",)).network_file()
    assert "[Match]\nName=enp3s0\n" in text and "Address=192.168.1.50/24\n" in text
    assert "Gateway=192.168.1.1\n" in text and "DNS=192.168.1.2\n" in text
    assert "LinkLocalAddressing=no" in text and "DHCP" not in text


async def type_store_url(pilot: object, app: RecoveryApp, url: str) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home screen")  # type: ignore[arg-type]
    await pilot.press("a", "ctrl+a", "ctrl+k", *url, "enter")  # type: ignore[attr-defined]


@asynctest
async def test_smb_url_asks_a_masked_password_and_never_shows_or_logs_it(
        action_log: ActionLog) -> None:
    secret = "Sesam-0pen!"
    app = recorded(action_log)
    async with app.run_test(size=SIZE) as pilot:
        await type_store_url(pilot, app, "smb://tech@127.0.0.1:9/images/shop")
        await wait_for(pilot, lambda: isinstance(app.screen, PasswordPrompt), "password")
        field = app.screen.query_one("#password", Input)
        assert field.password  # typed characters are drawn as dots
        await pilot.press(*secret)
        assert secret not in app.export_screenshot() and "•" * len(secret) in \
            app.export_screenshot().replace("&#160;", " ")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog), "the mount error",
                       attempts=600)
        error = app.screen.error  # type: ignore[attr-defined]
        assert "127.0.0.1" in error.title or "mount.cifs" in error.title, error.title
        assert secret not in shown(app)
    assert secret not in app.log_file.text()
    assert secret not in f"{error.title} {error.action}"
    assert not list(SECRETS.glob("cifs-*"))  # the credentials file is gone


@asynctest
async def test_nfs_url_mounts_without_a_password_and_says_why_it_failed(
        action_log: ActionLog) -> None:
    app = recorded(action_log)
    async with app.run_test(size=SIZE) as pilot:
        await type_store_url(pilot, app, "nfs://127.0.0.1:9/images/shop")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog), "the mount error",
                       attempts=600)
        assert "127.0.0.1" in app.screen.error.title  # type: ignore[attr-defined]
    assert "opening store nfs://127.0.0.1:9/images/shop" in app.log_file.text()


@asynctest
async def test_malformed_url_is_explained(action_log: ActionLog) -> None:
    app = recorded(action_log)
    async with app.run_test(size=SIZE) as pilot:
        await type_store_url(pilot, app, "smb://nas/images")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog), "the error")
        assert "needs a user" in app.screen.error.title  # type: ignore[attr-defined]


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SshServer]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.ssh/known_hosts of this test
    with served(make_ssh_server(tmp_path / "sshd")) as server:
        store = server.root / "shop"
        store.mkdir()
        (store / MARKER).write_text("format: 1\n")
        yield server


def mount_of(path: Path) -> Path | None:
    """The network mount under /run/recovery/net that holds `path`, if any."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = Path(line.split()[1])
        if point.is_relative_to(NET_ROOT) and path.is_relative_to(point):
            return point
    return None


def fingerprint(server: SshServer) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", f"{server.folder / 'host_key'}.pub"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]  # SHA256:...


async def to_host_key_question(pilot: Any, app: RecoveryApp, sshd: SshServer,
                               path: str = "shop") -> None:
    """The SSH store's URL typed, its password given: the unknown host key is asked about."""
    await type_store_url(pilot, app, sshd.url(path))
    await wait_for(pilot, lambda: isinstance(app.screen, PasswordPrompt), "password")
    await pilot.press(*sshd.password, "enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog),
                   "the host key question", attempts=2400)


@server_test
async def test_ssh_url_shows_an_unknown_host_key_and_opens_the_store_once_trusted(
        sshd: SshServer, action_log: ActionLog) -> None:
    app = recorded(action_log)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await to_host_key_question(pilot, app, sshd)
            question = str(app.screen.query_one("#question", Static).render())
            assert fingerprint(sshd) in question and "127.0.0.1" in question
            await pilot.press("y")
            home = app.screen_stack[1]
            assert isinstance(home, HomeScreen)
            await wait_for(pilot, lambda: any(s.disk == sshd.url("shop") for s in home.stores),
                           "the SSH store in the list", attempts=2400)
            store = next(s for s in home.stores if s.disk == sshd.url("shop"))
            assert mount_of(store.path) is not None
            assert sshd.password not in shown(app)
    finally:
        app.close_backend()
    assert mount_of(store.path) is None  # unmounted when the TUI ends
    known = (Path(os.environ["HOME"]) / ".ssh" / "known_hosts").read_text()
    assert "127.0.0.1" in known
    logged = app.log_file.text()
    assert sshd.password not in logged and "trusted" in logged
    assert f"store opened: {sshd.url('shop')}" in logged


@server_test
async def test_ssh_host_key_refused_opens_nothing(sshd: SshServer,
                                                  action_log: ActionLog) -> None:
    app = recorded(action_log)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await to_host_key_question(pilot, app, sshd)
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog), "the refusal")
            assert "not known" in app.screen.error.title  # type: ignore[attr-defined]
            assert TEST_USER not in app.screen.error.title  # type: ignore[attr-defined]
    finally:
        app.close_backend()
    assert not (Path(os.environ["HOME"]) / ".ssh" / "known_hosts").exists()


def asking(app: RecoveryApp, words: str) -> bool:
    return isinstance(app.screen, ConfirmDialog) and words in app.screen.question


@server_test
async def test_new_store_on_a_share_is_made_only_when_confirmed_then_captured_into(
        sshd: SshServer, windows_loop: tuple[DemoDisk, Path],  # noqa: F811
        tmp_path: Path) -> None:
    """As for a new USB drive: a share's folder with no store is offered as a new store;
    No leaves the server untouched, Yes creates it there and the capture wizard uses it."""
    _, source = windows_loop
    url, folder = sshd.url("customers/new"), sshd.root / "customers" / "new"
    app = RecoveryApp(Backend(), ActionLog(tmp_path / "tui.log"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await to_host_key_question(pilot, app, sshd, "customers/new")
            await pilot.press("y")  # trust the host key
            await wait_for(pilot, lambda: asking(app, "no image store"), "the new-store "
                           "question", attempts=2400)
            assert url in app.screen.question  # type: ignore[attr-defined]
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
            assert not folder.parent.exists() and mount_of(sshd.root) is None
            await type_store_url(pilot, app, url)
            await wait_for(pilot, lambda: isinstance(app.screen, PasswordPrompt), "password")
            await pilot.press(*sshd.password, "enter")
            await wait_for(pilot, lambda: asking(app, "no image store"), "the question again",
                           attempts=2400)
            await pilot.press("y")
            home = app.screen_stack[1]
            assert isinstance(home, HomeScreen)
            await wait_for(pilot, lambda: any(s.disk == url for s in home.stores),
                           "the new store in the list", attempts=2400)
            assert (folder / MARKER).is_file()  # on the server's disk
            store = next(s for s in home.stores if s.disk == url)
            await _capture(app, pilot, source, store.path)
            images = ChunkStore.open(store.path).list_images()
            assert [(i.name, i.complete) for i in images] == [("win10-before-repair", True)]
    finally:
        app.close_backend()
    assert (folder / "images" / "win10-before-repair" / "manifest.yaml").is_file()
    logged = app.log_file.text()
    assert f"store created: {url}" in logged and sshd.password not in logged
