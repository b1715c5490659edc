"""Sizes as technicians read and type them, and the hints each shell words its own way:
pure functions, no root needed."""

from __future__ import annotations

import pytest

from recovery.errors import Hint, RecoveryError
from recovery.ui.render import CLI_HINTS, cli_action
from recovery.ui.tui.wording import TUI_HINTS, tui_action
from recovery.units import GiB, MiB, align_down, align_up, human_size, parse_size


@pytest.mark.parametrize(("nbytes", "shown"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (256060514304, "256.1 GB"),
    (2 * 10**12, "2.0 TB")])
def test_sizes_are_shown_in_decimal_units_as_on_the_drive_label(nbytes: int, shown: str
                                                                ) -> None:
    assert human_size(nbytes) == shown


@pytest.mark.parametrize(("text", "size"), [
    ("512M", 512 * MiB), ("2GiB", 2 * GiB), ("2GB", 2 * 10**9), ("4096", 4096),
    (" 1.5 g ", int(1.5 * GiB)), ("10kb", 10_000)])
def test_sizes_typed_binary_or_decimal(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "12 parsecs", "-1G", "1.2.3M"])
def test_what_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_alignment_rounds_to_the_boundary() -> None:
    assert (align_up(1, MiB), align_up(MiB, MiB), align_down(MiB + 1, MiB)) == (MiB, MiB, MiB)


@pytest.mark.parametrize("hint", list(Hint))
def test_every_hint_is_worded_by_both_shells_and_the_engine_names_no_flag(hint: Hint
                                                                          ) -> None:
    error = RecoveryError("The restore was interrupted.", "The disk holds part of it.",
                          hint)
    cli, tui = cli_action(error), tui_action(error)
    assert cli.startswith(error.action) and cli != error.action and CLI_HINTS[hint] in cli
    assert tui.startswith(error.action) and tui != error.action and TUI_HINTS[hint] in tui
    assert "--" not in tui  # the TUI has switches and keys, not command-line flags
    assert error.as_dict()["hint"] == hint.value
