"""The TUI on the Linux console (TERM=linux): only glyphs a console font can draw.

The console app is driven headless and each screen's text checked against code page 437,
the kernel's built-in font (the poorest a PC shows): every character is in it or has a
deliberate fallback of the same width, and no border is made of block elements.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any, TypeVar

import pytest
from rich.cells import cell_len
from rich.color import Color, ColorSystem
from rich.console import Console
from textual._compositor import LayoutUpdate
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, ProgressBar
from textual.widgets.option_list import Option

from recovery.sys.udev import RecordedUdev
from recovery.ui.tui.actionlog import ActionLog
from recovery.ui.tui.app import ConsoleDriver, ConsoleRecoveryApp, RecoveryApp
from recovery.ui.tui.backend import Backend
from recovery.ui.tui.console import FALLBACKS, GlyphFilter, console_font_map, cp437, font_map
from recovery.ui.tui.screens.capture import CaptureWizard
from recovery.ui.tui.screens.home import JOB_POLL_SECONDS, HomeScreen
from recovery.ui.tui.screens.points import RestorePointsScreen
from recovery.ui.tui.screens.restore import RestoreWizard
from recovery.ui.tui.screens.wizard import Wizard
from recovery.ui.tui.widgets.picker import PartitionPicker, TickBox
from tests.tui.conftest import HANDMADE, HANG_LIMIT_SECONDS, SIZE, asynctest, wait_for

W = TypeVar("W", CaptureWizard, RestoreWizard)
TALL_BORDER = set("▔")  # only Textual's "tall" border draws it (its sides share scrollbar glyphs)


def screen_text(app: RecoveryApp) -> str:
    console = Console(width=SIZE[0], height=SIZE[1], file=io.StringIO(), color_system=None,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def console_app(tmp_path: Path) -> ConsoleRecoveryApp:
    return ConsoleRecoveryApp(Backend(udev_source=RecordedUdev(HANDMADE)),
                              ActionLog(tmp_path / "tui.log"))


async def at_home(pilot: Pilot[Any], app: RecoveryApp) -> Pilot[Any]:
    """The pilot, once home lists the recorded machine's disks."""
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen)
                   and bool(app.screen.disks), "the disks")
    return pilot


def unreadable_cells(app: RecoveryApp) -> dict[str, int]:
    """Text the console would draw in its background colour, with how many cells.

    Models the console: the app's colours in 16 (the console's colour system), then the 8
    a 512-glyph font leaves (the attribute's bright bit picks the glyph's half instead), so
    "bright black" is black; no colour means the console's default, light grey on black."""
    hidden: dict[str, int] = {}
    update = app.screen._compositor.render_update(full=True)
    assert isinstance(update, LayoutUpdate)
    for line in update.strips:
        for strip in line:
            for segment in strip:
                style = segment.style
                if not segment.text.strip() or style is None:
                    continue
                fg, bg = (_console_colour(style.color, 7), _console_colour(style.bgcolor, 0))
                if style.reverse:
                    fg, bg = bg, fg
                if fg == bg:
                    hidden[segment.text.strip()] = hidden.get(segment.text.strip(), 0) + 1
    return hidden


def _console_colour(colour: Color | None, default: int) -> int:
    if colour is None or colour.is_default:
        return default
    number = colour.downgrade(ColorSystem.STANDARD).number
    return default if number is None else number & 7


def test_filter_rewrites_what_the_font_lacks_keeping_the_width() -> None:
    glyphs = GlyphFilter(cp437())
    assert glyphs("\x1b[1mrecovery — capture…\x1b[0m") == "\x1b[1mrecovery - capture~\x1b[0m"
    assert glyphs("━━╸ 50%") == "─── 50%"
    assert glyphs("⏎ Continue") == "< Continue"
    assert glyphs("┌─┐│└┘ é") == "┌─┐│└┘ é"  # in the font: unchanged
    assert glyphs("漢") == "??"  # two cells stay two cells
    assert glyphs("plain ascii") == "plain ascii"
    # With a richer font (Terminus has the ellipsis and dashes) nothing is rewritten.
    assert GlyphFilter(cp437() | {"…", "—"})("a…b—c") == "a…b—c"


def test_fallbacks_are_as_wide_as_what_they_replace() -> None:
    for char, choices in FALLBACKS.items():
        for choice in choices:
            assert cell_len(choice) == cell_len(char), (char, choice)
    # The last choice of every chain is ASCII, which every console font has: the font the
    # image loads (Uni2-Terminus16) lacks most of code page 437's block elements.
    assert all(choices[-1].isascii() for choices in FALLBACKS.values())


def test_a_scroll_bar_thumb_never_becomes_question_marks_on_a_font_without_blocks() -> None:
    # Uni2-Terminus16's blocks: only the full one (read from the image's font file).
    terminus_like = GlyphFilter(cp437() - set("▄▀▌▐░▒▓"))
    bars = "▁▂▃▄▅▆▇█▔▉▊▋▌▍▎▏▐"
    assert "?" not in terminus_like(bars), terminus_like(bars)
    assert "?" not in GlyphFilter(set(map(chr, range(32, 127))))(bars)


def test_font_map_outside_a_virtual_console_falls_back_to_code_page_437(
        tmp_path: Path) -> None:
    path = tmp_path / "not-a-tty"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            font_map(fd)
    finally:
        os.close(fd)
    assert console_font_map(str(path)) == cp437()
    assert console_font_map(str(tmp_path / "missing")) == cp437()


def test_console_app_uses_the_console_driver_and_names_keys_in_words() -> None:
    app = ConsoleRecoveryApp(Backend(udev_source=RecordedUdev(HANDMADE)))
    assert app.get_driver_class() is ConsoleDriver
    assert app.HEADER_ICON in cp437()


@asynctest
async def test_console_screens_draw_only_console_glyphs(tmp_path: Path) -> None:
    app = console_app(tmp_path)
    font = cp437()
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        screens = [screen_text(app)]
        await pilot_.press("c")
        await wait_for(pilot_, lambda: isinstance(app.screen, CaptureWizard), "the wizard")
        await pilot_.pause(0.2)
        screens.append(screen_text(app))
    for text in screens:
        assert not TALL_BORDER & set(text), text
        assert "╔" in text and "╝" in text, text  # the focused list: a double frame
        unknown = {c for c in text if c not in font and c != "\n" and c not in FALLBACKS}
        assert not unknown, f"no console fallback for {sorted(unknown)}:\n{text}"
    assert "Esc Back" in screens[1]  # keys named in words in the footer


@asynctest
async def test_console_cursor_rows_are_white_on_blue(tmp_path: Path) -> None:
    """In the console's 16 colours the theme's cursor became bright cyan on cyan, which a
    technician could not read on a real screen (seen in a tty1 screendump)."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        table = app.screen.query_one(DataTable)
        styles = [table.get_component_rich_style("datatable--cursor")]
        await pilot_.press("c")
        await wait_for(pilot_, lambda: isinstance(app.screen, CaptureWizard), "the wizard")
        await pilot_.pause(0.2)
        options = app.screen.query_one(OptionList)
        options.focus()  # the cursor row of the list with the focus (the others: no bar)
        await pilot_.pause(0.2)
        styles.append(options.get_component_rich_style("option-list--option-highlighted"))
    for style in styles:
        assert style.bgcolor is not None and style.color is not None, style
        # ANSI colour 15 is bright white, 4 blue.
        assert (style.color.number, style.bgcolor.number, style.bold) == (15, 4, True), style


@asynctest
async def test_console_screens_have_no_text_in_the_background_colour(tmp_path: Path) -> None:
    """The hints and the highlighted disk's details were "bright black": black on the real
    console (seen in tty1 screendumps), so a technician never saw them."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        await pilot_.press("down")
        await pilot_.pause(0.2)
        found = {"home": unreadable_cells(app)}
        for key, name in [("c", "capture"), ("r", "restore"), ("p", "restore points"),
                          ("l", "log"), ("a", "open a store")]:
            await pilot_.press(key)
            await pilot_.pause(0.5)
            found[name] = unreadable_cells(app)
            await pilot_.press("escape")
            await wait_for(pilot_, lambda: isinstance(app.screen, HomeScreen), "home")
    assert found == {name: {} for name in found}, found


@asynctest
async def test_console_disabled_entries_are_readable(tmp_path: Path) -> None:
    """A refused restore target or an interrupted image is a disabled entry, which the
    theme draws "bright black": invisible on the console."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        options = OptionList(Option("refused: too small", disabled=True), Option("chosen"))
        await app.screen.mount(options)
        await pilot_.pause(0.2)
        style = options.get_component_rich_style("option-list--option-disabled")
        assert _console_colour(style.color, 7) != _console_colour(style.bgcolor, 0), style


@asynctest
async def test_console_progress_bar_shows_its_whole_length(tmp_path: Path) -> None:
    """The unfilled part of a bar is drawn in the bar's background colour, which was black."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        bar = ProgressBar(total=100, show_eta=False)
        await app.screen.mount(bar, before=0)
        bar.update(progress=40)
        await pilot_.pause(0.3)
        hidden = unreadable_cells(app)
        assert not any("━" in text for text in hidden), hidden


def grey_cells(app: RecoveryApp, text: str) -> int:
    """Cells drawn on a light-grey background in the screen lines that hold `text`."""
    update = app.screen._compositor.render_update(full=True)
    assert isinstance(update, LayoutUpdate)
    count = 0
    for line in update.strips:
        for strip in line:
            if text not in strip.text:
                continue
            count += sum(len(segment.text) for segment in strip if segment.style
                         and _console_colour(segment.style.bgcolor, 0) == 7)
    return count


async def mount_tick_boxes(app: RecoveryApp, pilot: Pilot[Any]) -> None:
    picker = PartitionPicker(("ticked", 1, True), ("unticked", 2, False))
    await app.screen.mount(picker, TickBox("box ticked", value=True),
                           TickBox("box unticked"), before=0)
    await pilot.pause(0.3)


@asynctest
async def test_console_tick_boxes_are_brackets_ticked_or_blank(tmp_path: Path) -> None:
    """Textual's box (half blocks around a cell) in the console's 8 colours is a solid
    light-grey cell, ticked or not (tty1 screendumps of capture steps 2 and 5); Textual
    also draws an unticked box's X black on black there. On the console: "[X]" / "[ ]" in
    the row's own colours, no grey cell."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        await mount_tick_boxes(app, pilot_)
        text = screen_text(app)
        assert "[X] ticked" in text and "[ ] unticked" in text, text
        assert "[X] box ticked" in text and "[ ] box unticked" in text, text
        assert unreadable_cells(app) == {}, unreadable_cells(app)
        for label in ("ticked", "unticked", "box ticked", "box unticked"):
            assert grey_cells(app, f"] {label}") == 0, label
        picker = app.screen.query_one(PartitionPicker)
        picker.focus()
        await pilot_.press("down", "space", "up", "space")  # untick the first, tick the second
        await pilot_.pause(0.3)
        text = screen_text(app)
        assert "[ ] ticked" in text and "[X] unticked" in text, text
        assert unreadable_cells(app) == {}, unreadable_cells(app)


@asynctest
async def test_terminal_tick_boxes_keep_the_block_look(tmp_path: Path) -> None:
    """Where the glyphs and colours exist (a terminal emulator) the box stays Textual's."""
    app = RecoveryApp(Backend(udev_source=RecordedUdev(HANDMADE)),
                      ActionLog(tmp_path / "tui.log"))
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        await mount_tick_boxes(app, pilot_)
        text = screen_text(app)
        assert "▐X▌ ticked" in text and "▐ ▌ unticked" in text, text
        assert "▐X▌ box ticked" in text and "▐ ▌ box unticked" in text, text


async def open_wizard(app: RecoveryApp, kind: type[W]) -> W:
    """A wizard (capture or restore, no store) over home's recorded disks, at step 1."""
    home = app.screen
    assert isinstance(home, HomeScreen)
    wizard = kind(home.disks, [])
    await app.push_screen(wizard)
    return wizard


async def capture_wizard(app: RecoveryApp) -> CaptureWizard:
    return await open_wizard(app, CaptureWizard)


async def restore_wizard(app: RecoveryApp) -> RestoreWizard:
    return await open_wizard(app, RestoreWizard)


async def points_screen(app: RecoveryApp) -> RestorePointsScreen:
    home = app.screen
    assert isinstance(home, HomeScreen)
    screen = RestorePointsScreen(home.disks)
    await app.push_screen(screen)
    return screen


@asynctest
async def test_console_capture_summary_options_fit_80_columns(tmp_path: Path) -> None:
    """The rescue-mode box's frame ran past the 80th column on tty1 (capture 5/5 screendump):
    every framed line of the summary step ends in its frame's side."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        wizard = await capture_wizard(app)
        await pilot_.pause(0.2)
        wizard.goto(CaptureWizard.STEPS.index(("step-summary", "start-capture")))
        await pilot_.pause(0.3)
        text = screen_text(app)
    boxes = [line.rstrip() for line in text.splitlines() if "[ ]" in line]
    assert len(boxes) == 2, text
    for line in boxes:
        assert line.endswith(("│", "║")), f"cut off at {SIZE[0]} columns:\n{text}"


@asynctest
async def test_console_only_the_focused_list_draws_a_cursor_bar(tmp_path: Path) -> None:
    """Home on tty1 showed two identical white-on-blue bars, the disk table's cursor and the
    store list's highlighted entry; only the focused one is a bar, the other cyan text."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        table, stores = app.screen.query_one(DataTable), app.screen.query_one(OptionList)
        styles = []
        for focused in (table, stores):
            focused.focus()
            await pilot_.pause(0.2)
            styles.append((table.get_component_rich_style("datatable--cursor"),
                           stores.get_component_rich_style("option-list--option-highlighted")))
    (table_bar, stores_text), (table_text, stores_bar) = styles
    for bar in (table_bar, stores_bar):
        assert _console_colour(bar.bgcolor, 0) == 4, bar  # blue
    for text in (table_text, stores_text):
        assert _console_colour(text.bgcolor, 0) == 0, text  # no bar
        assert _console_colour(text.color, 7) not in (0, 7), text  # and not plain text


@pytest.mark.parametrize("kind, last_step_keys", [
    ("capture", ("Enter: start", "r: rescue mode", "a: read all")),
    ("restore", ("Enter: overwrite",)), ("points", ("Enter: put back",))])
def test_console_every_wizard_step_says_which_keys_go_on(
        tmp_path: Path, kind: str, last_step_keys: tuple[str, ...]) -> None:
    """The footer names only Esc: capture steps 3-5, every restore step and the restore
    points' lists on tty1 said nothing about Enter (or r, a); each step has a hint line
    (restore points' detail step names r and k in its title, Esc in the footer)."""
    async def steps() -> list[str]:
        app = console_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            pilot_ = await at_home(pilot, app)
            opens = {"capture": capture_wizard, "restore": restore_wizard,
                     "points": points_screen}
            wizard: Wizard = await opens[kind](app)
            texts = []
            for step in range(len(wizard.STEPS)):
                wizard.goto(step)
                await pilot_.pause(0.3)
                texts.append(screen_text(app))
        return texts
    texts = asyncio.run(asyncio.wait_for(steps(), HANG_LIMIT_SECONDS))
    if kind == "points":
        assert "r roll back" in texts[2] and "Esc Back" in texts[2], texts[2]
        del texts[2]
    for text in texts:
        assert "Enter: " in text and "Esc" in text, text
    assert all(keys in texts[-1] for keys in last_step_keys), texts[-1]


@asynctest
async def test_a_screen_over_home_is_not_redrawn_while_idle(tmp_path: Path) -> None:
    """Home's polls (job lock every 2 s, network every 5 s) redrew the whole screen in
    front of it: text written over tty1's restore-points screen was gone within 0.4-1.9 s
    in a BIOS boot (so the e2e colour self-check missed it), and a TCG guest or an old PC
    spent the CPU on it. Home polls only while it is shown, and again once back."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        home = app.screen
        assert isinstance(home, HomeScreen)
        await pilot_.press("p")
        await wait_for(pilot_, lambda: app.screen is not home, "restore points")
        await pilot_.pause(0.5)
        updates: list[object] = []
        display = app._display
        app._display = lambda screen, update: (updates.append(update),  # type: ignore
                                               display(screen, update))[1]
        await pilot_.pause(JOB_POLL_SECONDS * 2.5)
        app._display = display  # type: ignore[method-assign]
        assert updates == [], f"{len(updates)} redraws of an idle screen"
        await pilot_.press("escape")
        await wait_for(pilot_, lambda: app.screen is home, "home")
        assert not home.polls_paused and all(poll._active.is_set() for poll in home.polls)


def label_colours(app: RecoveryApp, label: str) -> set[tuple[int, int]]:
    """(text, background) of `label`'s cells in the console's 8 colours."""
    update = app.screen._compositor.render_update(full=True)
    assert isinstance(update, LayoutUpdate)
    found = set()
    for line in update.strips:
        for strip in line:
            for segment in strip:
                style = segment.style
                if label in segment.text and style is not None:
                    fg, bg = _console_colour(style.color, 7), _console_colour(style.bgcolor, 0)
                    found.add((bg, fg) if style.reverse else (fg, bg))
    return found


@asynctest
async def test_console_buttons_are_white_on_their_colour(tmp_path: Path) -> None:
    """The focused "Overwrite this disk…" button was the theme's red reversed: black text
    on red on tty1, hard to read; unfocused, red text on black. White on red (and white on
    blue for "Start the capture"), focused or not."""
    app = console_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pilot_ = await at_home(pilot, app)
        restore = await restore_wizard(app)
        restore.goto(len(RestoreWizard.STEPS) - 1)  # the button has the focus
        await pilot_.pause(0.3)
        found = {"overwrite, focused": label_colours(app, "Overwrite this disk")}
        restore.query_one("#delta").focus()
        await pilot_.pause(0.3)
        found["overwrite"] = label_colours(app, "Overwrite this disk")
        restore.dismiss(None)
        capture = await capture_wizard(app)
        capture.goto(len(CaptureWizard.STEPS) - 1)
        await pilot_.pause(0.3)
        found["start, focused"] = label_colours(app, "Start the capture")
    red, blue, white = 1, 4, 7
    assert found == {"overwrite, focused": {(white, red)}, "overwrite": {(white, red)},
                     "start, focused": {(white, blue)}}, found
