"""The engine states facts; each shell words the next step its own way (issue #12).

An engine message that names a command-line flag or a `recovery ...` command reads wrong in
the TUI, where the technician has keys, switches and buttons. The scan below takes the flags
and commands from the CLI's own parser, so a new flag is covered without touching this test.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import re
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Static

from recovery.errors import (
    DeviceIOError,
    FailingTargetError,
    Hint,
    NotConfirmedError,
    RecoveryError,
    UsageError,
)
from recovery.ui.cli import build_parser
from recovery.ui.render import CLI_HINTS, cli_action, print_error
from recovery.ui.tui.screens.dialogs import ErrorDialog
from recovery.ui.tui.wording import TUI_HINTS, tui_action

ROOT = Path(__file__).resolve().parents[2] / "recovery"
ENGINE_PACKAGES = ("engine", "store", "registry", "fs", "model", "sys")


def _cli_words() -> tuple[set[str], set[str]]:
    """Every option string and every command name of `recovery`."""
    flags: set[str] = set()
    commands: set[str] = set()
    pending = [build_parser()]
    while pending:
        parser = pending.pop()
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                commands.update(action.choices)
                pending.extend(action.choices.values())
    flags -= {"--help"}
    return flags, commands


def _message_strings(tree: ast.Module) -> list[tuple[int, str]]:
    """String constants that can reach a technician: not docstrings, not a tool's argv
    (list or tuple literals, `argv.append(...)`)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            skip.add(id(node.body[0].value))
        argv: list[ast.AST] = []
        if isinstance(node, ast.List | ast.Tuple):
            argv = list(node.elts)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("append", "extend", "add_argument"):
            argv = list(node.args)
        for element in argv:  # a list of errors is not an argv: only plain strings count
            if isinstance(element, ast.Constant | ast.JoinedStr):
                skip.update(id(inner) for inner in ast.walk(element))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skip]


def _offences() -> list[str]:
    flags, commands = _cli_words()
    flag_re = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(flags))) + r")(?![\w-])")
    command_re = re.compile(r"\brecovery (" + "|".join(map(re.escape, sorted(commands)))
                            + r")\b")
    found = []
    for package in ENGINE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for line, text in _message_strings(tree):
                hit = flag_re.search(text) or command_re.search(text) \
                    or re.search(r"\bpress\b", text, re.IGNORECASE)
                if hit:
                    found.append(f"{path.relative_to(ROOT.parent)}:{line}: {hit.group(0)!r} "
                                 f"in {text[:70]!r}")
    return found


def _tui_offences() -> list[str]:
    """TUI strings that name a CLI flag as if it were a step in the TUI. (Until this scan the
    TUI's own strings were not looked at, and its restore wizard showed refusals as
    str(error), without the hint's TUI wording.) A string that says it is about the command
    line may name the flag."""
    flags, _ = _cli_words()
    flag_re = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(flags))) + r")(?![\w-])")
    found = []
    for path in sorted((ROOT / "ui" / "tui").rglob("*.py")):
        for line, text in _message_strings(ast.parse(path.read_text(), str(path))):
            hit = flag_re.search(text)
            if hit and "command line" not in text:
                found.append(f"{path.relative_to(ROOT.parent)}:{line}: {hit.group(0)!r} "
                             f"in {text[:70]!r}")
    return found


def test_tui_messages_name_no_cli_flag() -> None:
    assert _tui_offences() == []


def test_scan_sees_the_cli_words() -> None:
    """The scan itself can fail: the parser yields the flags the engine must not name."""
    flags, commands = _cli_words()
    assert {"--delta", "--yes", "--rescue", "--allow-failing-target"} <= flags
    assert {"capture", "restore", "disks", "images", "verify"} <= commands


def test_engine_messages_name_no_cli_flag_or_command() -> None:
    assert _offences() == []


def test_every_hint_is_worded_by_both_shells() -> None:
    assert set(CLI_HINTS) == set(Hint)
    assert set(TUI_HINTS) == set(Hint)
    flags, _ = _cli_words()
    for hint in Hint:
        assert not any(flag in TUI_HINTS[hint] for flag in flags), hint


@pytest.mark.parametrize(("error", "cli_words", "tui_words"), [
    (DeviceIOError("Read failed.", "The target is only partly restored.",
                   hint=Hint.RESUME_DELTA), "--delta", "Delta restore"),
    (NotConfirmedError("Not confirmed.", "Nothing was written.", hint=Hint.CONFIRM),
     "--yes", "dialog"),
    (DeviceIOError("Read failed.", "The disk may be failing.", hint=Hint.RESCUE),
     "--rescue", "Rescue mode"),
    (FailingTargetError("Disk is failing.", "Restore onto a healthy disk.",
                        hint=Hint.ALLOW_FAILING_TARGET), "--allow-failing-target", "Yes"),
    (UsageError("A Windows size of 100 MB is below what Windows needs.",
                "Choose at least 300 MB for Windows.", hint=Hint.SYSTEM_SIZE),
     "--system-size", "'Windows size' field"),
])
def test_each_shell_words_the_hint_its_own_way(
        error: RecoveryError, cli_words: str, tui_words: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli, tui = cli_action(error), tui_action(error)
    assert cli.startswith(error.action) and tui.startswith(error.action)
    assert cli_words in cli and cli_words not in tui
    assert tui_words in tui and tui_words not in cli
    # What each shell really shows: the CLI's error lines, the TUI's error dialog.
    print_error(error, as_json=False)
    shown_cli = " ".join(capsys.readouterr().err.split())
    assert cli_words in shown_cli and error.title in shown_cli
    print_error(error, as_json=True)
    assert cli_words in json.loads(capsys.readouterr().out)["error"]["action"]
    shown_tui = asyncio.run(_dialog_text(error))
    assert tui_words in shown_tui and error.action in shown_tui
    assert not any(flag in shown_tui for flag in _cli_words()[0])


async def _dialog_text(error: RecoveryError) -> str:
    app: App[None] = App()
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(ErrorDialog(error))
        await pilot.pause()
        return " ".join(str(app.screen.query_one("#error-action", Static).render()).split())
