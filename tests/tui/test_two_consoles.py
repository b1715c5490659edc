"""Two whole TUIs in two processes, as tty1 and ttyS0 run them (issue #12): one restores onto
a loop disk through its wizard; the other, started meanwhile, shows what the first is doing
and its store scan mounts none of that disk's partitions until the restore has ended."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine.storemounts import StoreMounts, mount_partition
from recovery.model.disk import Disk, DiskPartition
from recovery.sys import losetup
from recovery.sys.run import run
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.home import HomeScreen
from tests.tui.conftest import SIZE, wait_for
from tests.tui.test_flows import DISK_SIZE, store, windows_loop  # noqa: F401 (fixtures)
from tests.tui.test_jobs import _ours, captured, other_job_banner  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT = 300  # seconds for the whole test: a hung console must fail it, not stall it


@pytest.fixture
def target(windows_loop: tuple[DemoDisk, Path], tmp_path: Path  # noqa: F811
           ) -> Iterator[Path]:
    """A disk that already holds a Windows layout (NTFS partitions a store scan would
    mount to look into): the disk the other console overwrites."""
    copy = tmp_path / "target.img"
    run(["cp", "--sparse=always", str(windows_loop[0].path), str(copy)])
    with losetup.loop_device(copy) as device:
        yield device


@pytest.fixture
def other_console(captured: tuple[Path, Path], target: Path  # noqa: F811
                  ) -> Iterator[subprocess.Popen[str]]:
    """`recovery tui` on ttyS0, in its own process, writing to `target` (held there)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.tui.other_console", str(captured[1]), str(target),
         str(DISK_SIZE)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "RECOVERY_CONSOLE": "ttyS0", "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    started = child.stdout.readline().strip()
    assert started == "writing", f"the other console did not start its restore: {started!r}"
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()


def test_idle_tui_shows_the_other_tuis_restore_and_mounts_none_of_its_disk(
        other_console: subprocess.Popen[str], target: Path, tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_idle_console(other_console, target, tmp_path), TIME_LIMIT))


async def _idle_console(child: subprocess.Popen[str], target: Path, tmp_path: Path) -> None:
    looked_at: list[int] = []  # partitions of the target the scan tried to mount

    def recording(disk: Disk, partition: DiskPartition, mountpoint: Path, read_write: bool
                  ) -> AbstractContextManager[Path]:
        if disk.node == target:
            looked_at.append(partition.number)
        return mount_partition(disk, partition, mountpoint, read_write)

    log = ActionLog(tmp_path / "tty1.log")
    root = tmp_path / "stores"
    mounts = StoreMounts(root, mount=recording, log=log.write,
                         accept=lambda disk: disk.node == target)
    app = RecoveryApp(Backend(store_mounts=mounts, hotplug=False), log)
    try:
        async with app.run_test(size=SIZE) as pilot:
            def banner() -> str:
                return other_job_banner(app)
            await wait_for(pilot, lambda: "ttyS0" in banner(), "the other console's job",
                           attempts=600)
            assert "restore of image win10 to" in banner() and str(target) in banner()
            await wait_for(pilot, lambda: "mounting nothing" in log.text(), "a store scan",
                           attempts=600)
            assert looked_at == [] and _ours(root) == []
            await pilot.press("r")  # no second job while that one runs
            assert isinstance(app.screen, HomeScreen)

            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("go on\n")
            child.stdin.flush()
            finished = await asyncio.to_thread(child.stdout.readline)
            assert finished.startswith("done"), finished
            assert "matches the image" in finished
            assert await asyncio.to_thread(child.wait) == 0
            # The same scan does look at the disk once nobody writes it: the test can fail.
            await wait_for(pilot, lambda: bool(looked_at), "a scan of the restored disk",
                           attempts=900)
            await wait_for(pilot, lambda: banner() == "", "the banner to go", attempts=300)
    finally:
        mounts.close()
    text = log.text()
    assert "another job runs: restore of image win10" in text
    assert "the other job ended" in text
