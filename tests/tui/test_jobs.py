"""One job per machine and no headless jobs: the idle console shows the other console's job
and mounts nothing while it runs; Ctrl+Q during a restore stops it before leaving; every
worker failure (an OSError too) is shown and logged; tools' stderr is in the action log;
the log is saved onto a store the TUI mounted read-only."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList, Static

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.storemounts import StoreMounts
from recovery.errors import RecoveryError
from recovery.events import EventSink, Progress
from recovery.model.disk import Disk
from recovery.sys.joblock import JobLock
from recovery.sys.mounts import read_mounts
from recovery.sys.run import run
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.dialogs import ConfirmDialog, ErrorDialog, PathPrompt
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.job import JobScreen
from recovery.ui.tui.screens.restore import RestoreWizard
from recovery.units import human_size
from tests.tui.conftest import SIZE, asynctest, recorded_app, wait_for
from tests.tui.test_flows import DISK_SIZE, store, windows_loop  # noqa: F401 (fixtures)
from tests.tui.test_log import log_shown, squeezed

OTHER_CONSOLE = """
import sys
from pathlib import Path
from recovery.ui.tui.backend import Backend
with Backend().hold_job(sys.argv[1], [Path(sys.argv[2])]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _ours(root: Path) -> list[str]:
    return sorted(m.mountpoint for m in read_mounts() if m.mountpoint.startswith(str(root)))


@pytest.fixture
def restoring_console(usb_drive: Path) -> Iterator[subprocess.Popen[str]]:
    """The other console (ttyS0), restoring onto the USB drive: it holds the machine's job
    lock exactly as the TUI's restore does (Backend.hold_job, for the job's whole run)."""
    child = subprocess.Popen(
        [sys.executable, "-c", OTHER_CONSOLE, f"restore of image win10 to {usb_drive}",
         str(usb_drive)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "RECOVERY_CONSOLE": "ttyS0", "PYTHONPATH": os.getcwd()})
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    yield child
    child.kill()
    child.wait()


def other_job_banner(app: RecoveryApp) -> str:
    """What the home screen says about the other console's job ("" when none)."""
    screen = app.screen
    if not isinstance(screen, HomeScreen):
        return ""
    widget = screen.query_one("#other-job", Static)
    return " ".join(str(widget.render()).split()) if widget.display else ""


def _store_ids(app: RecoveryApp) -> list[str]:
    screen = app.screen
    if not isinstance(screen, HomeScreen):
        return []
    options = screen.query_one("#stores", OptionList)
    return [str(options.get_option_at_index(i).id) for i in range(options.option_count)]


@asynctest
async def test_idle_console_shows_the_other_consoles_restore_and_mounts_none_of_it(
        usb_drive: Path, restoring_console: subprocess.Popen[str],
        tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "tui.log")
    root = tmp_path / "stores"
    mounts = StoreMounts(root, log=log.write, accept=lambda disk: disk.node == usb_drive)
    app = RecoveryApp(Backend(store_mounts=mounts, hotplug=False), log)
    try:
        async with app.run_test(size=SIZE) as pilot:
            def banner() -> str:
                return other_job_banner(app)
            await wait_for(pilot, lambda: "ttyS0" in banner(), "the other console's job")
            assert f"restore of image win10 to {usb_drive}" in banner()
            await wait_for(pilot, lambda: "mounting nothing" in log.text(), "a store scan",
                           attempts=600)
            assert _ours(root) == []  # the drive being restored: none of it mounted
            await pilot.press("r")  # no second job while that one runs
            assert isinstance(app.screen, HomeScreen)
            await pilot.press("c")
            assert isinstance(app.screen, HomeScreen)

            assert restoring_console.stdin is not None
            restoring_console.stdin.close()  # the restore on ttyS0 ends
            restoring_console.wait()
            wanted = str(root / f"{usb_drive.name}-1")
            await wait_for(pilot, lambda: wanted in _store_ids(app),
                           "the drive's store, once the job ended", attempts=600)
            assert banner() == ""
    finally:
        mounts.close()
    text = log.text()
    assert "another job runs: restore of image win10" in text
    assert "the other job ended" in text


class PausedBackend(Backend):
    """The real engine, held at its first progress event until the test lets it go on; it
    sees only the test's disk (checking every loop disk of a shared machine takes long)."""

    def __init__(self, disk: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.disk = disk
        self.writing = threading.Event()
        self.go_on = threading.Event()

    def disks(self) -> list[Disk]:
        return [d for d in super().disks() if d.node == self.disk]

    def execute_restore(self, plan: Any, events: EventSink, cancel: threading.Event) -> Any:
        def paused(event: Any) -> None:
            events(event)
            if isinstance(event, Progress) and not self.writing.is_set():
                self.writing.set()
                self.go_on.wait(60)
        return super().execute_restore(plan, paused, cancel)


@pytest.fixture
def captured(windows_loop: tuple[DemoDisk, Path], store: Path  # noqa: F811
             ) -> tuple[Path, Path]:
    """(disk, store holding an image of it), made outside the test's time limit: capturing
    is not what is tested here."""
    capture(CaptureRequest(source=windows_loop[1], store=store, name="win10"))
    return windows_loop[1], store


@asynctest
async def test_ctrl_q_during_a_restore_stops_the_job_before_leaving(
        captured: tuple[Path, Path], tmp_path: Path) -> None:
    source, image_store = captured
    log = ActionLog(tmp_path / "tui.log")
    backend = PausedBackend(source, opened_stores=[image_store], hotplug=False)
    app = RecoveryApp(backend, log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                       and bool(app.screen.stores), "home with the store")
        await pilot.press("r", "enter", "enter")  # restore: the store, the only image
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        await wait_for(pilot, lambda: wizard.targets_checked, "targets checked",
                       attempts=1200)
        await pilot.press("enter", "enter")  # the image's own disk; "Overwrite…"
        await pilot.press(*human_size(DISK_SIZE), "enter")
        await wait_for(pilot, backend.writing.is_set, "the restore to write")
        job = app.running_job()
        assert isinstance(job, JobScreen) and backend.job_holder() is not None
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # changed my mind: nothing stops
        assert not job.cancel_event.is_set() and app.is_running
        await pilot.press("ctrl+q", "y")
        assert job.cancel_event.is_set() and job.quit_when_done
        await pilot.pause(0.5)
        assert app.is_running and job.running  # still waiting for the engine to stop
        backend.go_on.set()
        await wait_for(pilot, lambda: not app.is_running, "the app to leave", attempts=600)
    assert job.finished.is_set()
    assert not [t for t in threading.enumerate() if "restore" in t.name.lower()]
    assert JobLock().holder() is None
    text = log.text()
    assert "quit requested during the restore" in text
    assert "the restore stopped; leaving as asked" in text
    assert "restore finished" not in text


class FailingBackend(Backend):
    def disks(self) -> list[Disk]:
        raise OSError(errno.EIO, "Input/output error", "/sys/block/sdz/device")


@asynctest
async def test_an_oserror_in_a_worker_is_shown_and_logged(tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "tui.log")
    app = RecoveryApp(FailingBackend(hotplug=False), log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog), "the error")
        shown = str(app.screen.query_one("#error-title").render())
        assert "Listing the disks failed: Input/output error" in shown
        assert "/sys/block/sdz/device" in shown
        await pilot.press("enter")
        assert isinstance(app.screen, HomeScreen) and app.is_running
    text = log.text()
    assert "Listing the disks failed: Input/output error" in text
    assert "Traceback" in text and "OSError" in text


@asynctest
async def test_a_tools_command_line_and_stderr_are_in_the_action_log(tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "tui.log")
    app = recorded_app(log)
    missing = tmp_path / "no-such-disk"
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        run(["sfdisk", "--dump", str(missing)], check=False)
        await pilot.press("l")
        shown = await log_shown(app, pilot)
    assert squeezed(f"run: sfdisk --dump {missing}") in shown
    assert squeezed(f"stderr of sfdisk: sfdisk: cannot open {missing}") in shown


@asynctest
async def test_log_saved_onto_a_store_the_tui_mounted_read_only(
        usb_drive: Path, tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "tui-save.log")
    root = tmp_path / "stores"
    mounts = StoreMounts(root, log=log.write, accept=lambda disk: disk.node == usb_drive)
    app = RecoveryApp(Backend(store_mounts=mounts, hotplug=False), log)
    found = root / f"{usb_drive.name}-1"
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: str(found) in _store_ids(app), "the store",
                           attempts=600)
            with pytest.raises(OSError) as refused:
                (found / "probe").write_bytes(b"x")
            assert refused.value.errno == errno.EROFS  # mounted read-only to find it
            await pilot.press("l", "s")
            assert isinstance(app.screen, PathPrompt)
            await pilot.press("ctrl+a", "ctrl+k", *str(found), "enter")
            await wait_for(pilot, lambda: (found / "logs" / log.path.name).exists(),
                           "the saved log")
            assert not isinstance(app.screen, ErrorDialog)
            # Writable only for the save: read-only again, still mounted and listed.
            await wait_for(pilot, lambda: f"{found} mounted read-only again" in log.text(),
                           "the store read-only again")
            with pytest.raises(OSError) as refused:
                (found / "probe").write_bytes(b"x")
            assert refused.value.errno == errno.EROFS
            assert os.path.ismount(found)
        saved = (found / "logs" / log.path.name).read_text()
        assert "recovery tui started" in saved
    finally:
        mounts.close()
    assert _ours(root) == []


def test_a_verification_leaves_a_store_it_made_writable_read_only(
        usb_drive: Path, tmp_path: Path) -> None:
    """Verify may record its outcome in the store, so it mounts the store read-write;
    however the check ends (here: the image is not there), the store is read-only again."""
    log = ActionLog(tmp_path / "tui-verify.log")
    root = tmp_path / "stores"
    mounts = StoreMounts(root, log=log.write, accept=lambda disk: disk.node == usb_drive)
    backend = Backend(store_mounts=mounts, hotplug=False)
    found = root / f"{usb_drive.name}-1"
    try:
        backend.stores(backend.disks())
        assert os.path.ismount(found), found  # found by the scan, read-only
        with pytest.raises(RecoveryError):
            backend.verify(found, "no-such-image", None, lambda event: None,
                           threading.Event())
        assert f"{found} mounted read-write" in log.text()
        assert f"{found} mounted read-only again" in log.text()
        with pytest.raises(OSError) as refused:
            (found / "probe").write_bytes(b"x")
        assert refused.value.errno == errno.EROFS
    finally:
        mounts.close()
    assert _ours(root) == []
