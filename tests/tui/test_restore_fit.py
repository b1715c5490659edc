"""The restore wizard onto a smaller disk, at 80x25: a disk too small is refused with the
figure, a smaller one that fits says how Windows is shrunk; the plan table (each partition
old -> new start and size, what moves, what is resized) and the before/after bar picture
are on the screen uncut; the technician's choice of Windows size re-plans (a size below what
Windows needs is refused with the figure) and is what the restore then writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, Static

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.fit import FitRequest, minimum_disk_size, system_minimum
from recovery.engine.resize import resizable_system, system_needed
from recovery.engine.table import read_table
from recovery.store.objects import ChunkStore
from recovery.sys import ntfsresize
from recovery.sys.blockdev import BlockDevice
from recovery.sys.ntfs3g import volume_device
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.screens.home import HomeScreen
from recovery.ui.tui.screens.restore import RestoreWizard
from recovery.units import human_size
from tests.tui.conftest import SIZE, asynctest, wait_for
from tests.tui.test_flows import _choose, _empty_disk, showing_result

MiB = 1024 * 1024
# ESP, MSR, Windows 640 MiB, WinRE: 918 MiB of partitions; the targets are smaller.
SPEC = DiskSpec(size=920 * MiB, windows_size=640 * MiB, data_bytes=16 * MiB, seed=5)


@pytest.fixture
def captured(tmp_path: Path) -> tuple[DemoDisk, Path, int, int]:
    """The image in a store, the smallest disk it fits and the smallest Windows size."""
    disk = build_windows_disk(tmp_path / "windows.img", SPEC)
    store = tmp_path / "store"
    capture(CaptureRequest(disk.path, store, name="pc"))
    manifest, _ = ChunkStore.open(store).load_image("pc")
    system = resizable_system(manifest)
    assert system is not None
    needed = system_needed(store, manifest, system)
    minimum = minimum_disk_size(FitRequest(manifest.table, 0, system.number, needed))
    return disk, store, minimum, system_minimum(needed)


@pytest.fixture
def smaller(tmp_path: Path, live_udev: None) -> Iterator[Path]:
    yield from _empty_disk(tmp_path / "smaller.img", 700 * MiB)


@pytest.fixture
def too_small(tmp_path: Path, live_udev: None) -> Iterator[Path]:
    yield from _empty_disk(tmp_path / "too-small.img", 400 * MiB)


def _shown(wizard: RestoreWizard, selector: str) -> str:
    return str(wizard.query_one(selector, Static).render())


def _assert_uncut(wizard: RestoreWizard, lines: list[str]) -> None:
    """The plan table and the bars fit the 80x25 screen: none of their lines wraps, the
    whole text and the button below it end above the footer."""
    lost = wizard.query_one("#lost", Static)
    plan = lines[next(i for i, line in enumerate(lines) if line.startswith("New layout")):]
    assert max(len(line) for line in plan) <= lost.content_region.width
    assert lost.region.bottom <= SIZE[1] - 1  # above the footer
    assert wizard.query_one("#overwrite", Button).region.bottom <= SIZE[1] - 1


@asynctest
async def test_fitted_plan_table_bars_size_choice_and_refusal(
        captured: tuple[DemoDisk, Path, int, int], smaller: Path, too_small: Path,
        tmp_path: Path) -> None:
    disk, store, minimum, floor = captured
    chosen = floor + 32 * MiB  # between what Windows needs and what the disk leaves room for
    assert chosen < 400 * MiB
    app = RecoveryApp(Backend(opened_stores=[store]), ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                       and {smaller, too_small} <= {d.node for d in app.screen.disks},
                       "both loop disks listed")
        await pilot.press("r")
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        await _choose(pilot, wizard.query_one("#restore-stores", OptionList), str(store))
        await pilot.press("enter")  # the only image
        await wait_for(pilot, lambda: wizard.targets_checked, "targets checked",
                       attempts=1200)
        options = wizard.query_one("#targets", OptionList)
        refused = options.get_option(str(too_small))
        assert refused.disabled
        assert f"needs {human_size(minimum)} ({minimum} bytes)" in str(refused.prompt)
        fits = options.get_option(str(smaller))
        assert not fits.disabled
        assert "Windows will be shrunk to" in str(fits.prompt)
        await _choose(pilot, options, str(smaller))
        assert wizard.step == 3

        lines = _shown(wizard, "#lost").splitlines()
        table = [line for line in lines if line.startswith("  ") and " start " in line]
        assert [line.split()[0] for line in table] == ["1", "2", "3", "4"]
        assert table[0].endswith("kept") and table[1].endswith("kept")
        assert "->" in table[2] and table[2].endswith("shrunk")  # Windows: new size
        assert table[3].count("->") == 1 and table[3].endswith("moved")  # WinRE: new start
        bars = [line for line in lines if line.lstrip().startswith(("before [", "after  ["))]
        assert len(bars) == 2 and all("3" in bar and "4" in bar for bar in bars)
        assert len(bars[1].split("[")[1].split("]")[0]) < len(bars[0].split("[")[1]
                                                             .split("]")[0])
        _assert_uncut(wizard, lines)

        size_input = wizard.query_one("#system-size", Input)
        assert size_input.display
        size_input.focus()
        await pilot.press(*f"{(floor - MiB) // MiB}M", "enter")
        await wait_for(pilot, lambda: "Refused" in _shown(wizard, "#system-size-refusal"),
                       "the refusal of a size below what Windows needs")
        assert human_size(floor) in _shown(wizard, "#system-size-refusal")
        # The engine's hint, as the TUI words it: the field, not the CLI's --system-size.
        assert "'Windows size' field" in " ".join(_shown(wizard, "#system-size-refusal").split())
        assert "--" not in _shown(wizard, "#system-size-refusal")
        assert _shown(wizard, "#lost").splitlines() == lines  # the plan is unchanged

        size_input.focus()
        await pilot.press("ctrl+a", "ctrl+k", *f"{chosen // MiB}M", "enter")
        await wait_for(pilot, lambda: f"-> {human_size(chosen)}" in _shown(wizard, "#lost"),
                       "the plan with the chosen Windows size")
        assert _shown(wizard, "#system-size-refusal") == ""
        _assert_uncut(wizard, _shown(wizard, "#lost").splitlines())

        wizard.query_one("#overwrite", Button).focus()
        await pilot.press("enter")
        await pilot.press(*human_size(700 * MiB), "enter")  # loop disks have no serial
        await wait_for(pilot, lambda: showing_result(app), "restore result", attempts=900)
        result = str(app.screen.query_one("#result-lines").render())
        assert "read back from the disk, past the cache" in result

    with BlockDevice.open(smaller) as device:
        windows = next(p for p in read_table(device).partitions
                       if p.number == disk.windows.number)
    assert windows.size == chosen  # what was shown and confirmed is what was written
    with volume_device(smaller, windows.start, windows.size) as volume:
        ntfsresize.check(volume)
