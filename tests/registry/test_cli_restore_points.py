"""`recovery restore-points ...` through the real command line entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recovery.errors import NotConfirmedError, RestorePointNotFoundError
from recovery.ui.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    status = main(["restore-points", *argv, "--json"])
    output = capsys.readouterr().out
    return status, json.loads(output)


def test_list_show_diff_rollback_history_undo(broken_system_volume: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    volume = str(broken_system_volume)
    status, listing = run_json(capsys, "list", volume)
    assert status == 0
    points = listing["points"]
    assert len(points) == 1
    point = points[0]
    assert {k: point[k] for k in ("id", "source", "created", "description", "hives")} == {
        "id": "vss-1", "source": "vss", "created": "2024-03-01T09:30:00Z",
        "description": None, "hives": {"SYSTEM": "ok", "SAM": "ok"}}

    status, shown = run_json(capsys, "show", volume, "vss-1")
    assert status == 0
    assert shown["current_system"]["loadable"] is False

    status, diff = run_json(capsys, "diff", volume, "vss-1", "--hive", "SYSTEM", "--key",
                            "Select")
    assert status == 0 and diff["changes"] == [
        {"path": "\\Select", "change": "removed", "values": []}]

    status, error = run_json(capsys, "rollback", volume, "vss-1", "--hive", "SYSTEM")
    assert status == NotConfirmedError.code
    assert error["ok"] is False and error["error"]["code"] == NotConfirmedError.code

    status, done = run_json(capsys, "rollback", volume, "vss-1", "--hive", "SYSTEM", "--yes")
    assert status == 0 and done["verified"] is True
    status, records = run_json(capsys, "history", volume)
    assert [(r["id"], r["state"]) for r in records["records"]] == [
        (done["record"], "applied")]

    assert main(["restore-points", "undo", volume, "--yes"]) == 0
    assert "are back as before" in capsys.readouterr().out


def test_unknown_point_exits_with_its_code(broken_system_volume: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["restore-points", "show", str(broken_system_volume), "vss-9"])
    assert status == RestorePointNotFoundError.code
    assert "vss-9" in capsys.readouterr().err


def test_text_list(broken_system_volume: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["restore-points", "list", str(broken_system_volume)]) == 0
    out = capsys.readouterr().out
    assert "vss-1" in out and "2024-03-01 09:30:00 UTC" in out and "SYSTEM ok" in out
