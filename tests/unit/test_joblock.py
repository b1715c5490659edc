"""One job per machine: the lock file under /run that every console and the CLI take."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.errors import BusyError
from recovery.sys.joblock import JobHolder, JobLock

HOLDER = """
import sys
from pathlib import Path
from recovery.sys.joblock import JobLock
with JobLock(Path(sys.argv[1])).hold(sys.argv[2], [sys.argv[3]], console="ttyS0"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def _holder(lock_dir: Path, what: str, disk: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_dir), what, disk],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


@pytest.fixture
def other_console(lock_dir: Path) -> Iterator[subprocess.Popen[str]]:
    child = _holder(lock_dir, "restore of image win10 to /dev/loop91", "/dev/loop91")
    yield child
    child.kill()
    child.wait()


def test_a_job_on_another_console_is_shown_and_refuses_a_second(
        lock_dir: Path, other_console: subprocess.Popen[str]) -> None:
    lock = JobLock(lock_dir)
    holder = lock.holder()
    assert holder is not None and holder.pid == other_console.pid
    assert holder.console == "ttyS0" and holder.touches("/dev/loop91")
    assert not holder.touches("/dev/loop92")
    with pytest.raises(BusyError, match=r"restore of image win10 to /dev/loop91 \(on ttyS0"), \
            lock.hold("capture of /dev/loop92", ["/dev/loop92"], wait=5):
        pass
    with lock.shared() as job:  # a store scan sees the job and mounts nothing
        assert job is not None and job.pid == other_console.pid
    assert other_console.stdin is not None
    other_console.stdin.close()  # the other console's job ends
    other_console.wait()
    assert lock.holder() is None
    with lock.hold("capture of /dev/loop92", ["/dev/loop92"], console="tty1") as mine:
        assert lock.holder() == mine


def test_a_crashed_holder_leaves_no_lock(lock_dir: Path,
                                         other_console: subprocess.Popen[str]) -> None:
    other_console.kill()
    other_console.wait()
    lock = JobLock(lock_dir)
    assert json.loads(lock.path.read_text())["pid"] == other_console.pid  # the record stays
    assert lock.holder() is None
    with lock.hold("verification of /dev/loop91", ["/dev/loop91"]):
        pass


def test_a_lock_held_under_a_dead_pid_is_stale(lock_dir: Path) -> None:
    """The lock's file descriptor outlived the job's process (an orphaned child holds it)."""
    lock = JobLock(lock_dir)
    lock_dir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.path.write_text(json.dumps({"pid": dead.pid, "console": "tty1", "what": "restore",
                                     "disks": ["/dev/loop93"], "started": "x"}))
    orphan = subprocess.Popen(["flock", "--exclusive", str(lock.path), "sleep", "120"])
    try:
        for _ in range(100):  # until flock(1) holds it
            if subprocess.run(["flock", "--nonblock", "--shared", str(lock.path), "true"]
                              ).returncode != 0:
                break
            time.sleep(0.05)
        assert lock.holder() is None  # the record's pid is dead: no job runs
        with lock.hold("restore of image w to /dev/loop93", ["/dev/loop93"], wait=1) as mine:
            assert lock.holder() == mine
    finally:
        orphan.kill()
        orphan.wait()


def test_a_job_waits_for_a_store_scan_but_not_forever(lock_dir: Path) -> None:
    lock = JobLock(lock_dir)
    with lock.shared() as job:
        assert job is None
        with pytest.raises(BusyError, match="store scan"), \
                lock.hold("capture of /dev/loop94", wait=0.3):
            pass
    with lock.hold("capture of /dev/loop94", wait=0.3) as mine:
        assert isinstance(mine, JobHolder) and mine.what == "capture of /dev/loop94"


def test_cli_restore_is_refused_while_another_console_restores(
        tmp_path: Path, other_console: subprocess.Popen[str], lock_dir: Path) -> None:
    target = tmp_path / "target.img"
    target.write_bytes(b"customer data" * 1000)
    result = subprocess.run(
        [sys.executable, "-m", "recovery", "restore", "--store", str(tmp_path / "store"),
         "win10", str(target), "--yes", "--json"], capture_output=True, text=True,
        env={**os.environ, "RECOVERY_LOCK_DIR": str(lock_dir), "PYTHONPATH": os.getcwd()})
    assert result.returncode == BusyError.code, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "busy" and "/dev/loop91" in error["title"]
    assert "ttyS0" in error["title"]
    assert target.read_bytes() == b"customer data" * 1000


def test_one_route_into_the_tui_with_or_without_verbose() -> None:
    """`recovery tui` and `recovery --verbose tui` both start the TUI before the CLI and the
    engine are imported (the first paint does not wait for them)."""
    from recovery.ui.entry import tui_arguments

    assert tui_arguments(["tui", "--store", "/s"]) == ["--store", "/s"]
    assert tui_arguments(["--verbose", "tui"]) == ["--verbose"]
    assert tui_arguments(["-v", "tui", "--log", "x"]) == ["--log", "x", "--verbose"]
    assert tui_arguments(["--verbose", "disks"]) is None
    probe = ("import sys\nfrom recovery.ui.entry import main\ntry:\n"
             "    main(['--verbose', 'tui', '--help'])\nexcept SystemExit:\n    pass\n"
             "print('cli' if 'recovery.ui.cli' in sys.modules else 'no-cli')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()}, check=True)
    assert "--verbose" in result.stdout and result.stdout.strip().endswith("no-cli")


def test_engine_advice_is_worded_for_the_shell_that_shows_it() -> None:
    """The engine states facts; the CLI adds the flag, the TUI the switch."""
    from recovery.engine.restore import RESUME_ADVICE
    from recovery.errors import DeviceIOError, Hint
    from recovery.ui.render import cli_action
    from recovery.ui.tui.wording import tui_action

    error = DeviceIOError("Write failed on /dev/sdb.", RESUME_ADVICE, hint=Hint.RESUME_DELTA)
    assert "--" not in RESUME_ADVICE
    assert cli_action(error).endswith("again with --delta.")
    assert "--" not in tui_action(error) and "'Delta restore" in tui_action(error)
    assert error.as_dict()["hint"] == "resume-delta"
