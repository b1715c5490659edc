"""What `recovery tui` loads before its first frame (boot time, issue 14).

Under TCG every module is seconds-expensive on the live image: imported cold from the
squashfs, then executed at a fifteenth of the host's speed. The first frame (the home
screen's empty lists) needs Textual and the home screen; the engine, the store, the device
tools, the wizards, the dialogs and the job screen load when first used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Modules (or packages: any module under them) the first frame must not wait for.
LATER = (
    "recovery.engine", "recovery.store", "recovery.sys", "recovery.fs", "recovery.registry",
    "recovery.model", "recovery.events", "recovery.ui.cli", "recovery.ui.tui.backend",
    "recovery.ui.tui.screens.dialogs", "recovery.ui.tui.screens.job",
    "recovery.ui.tui.screens.wizard", "recovery.ui.tui.screens.capture",
    "recovery.ui.tui.screens.restore", "recovery.ui.tui.screens.network",
    "recovery.ui.tui.screens.points", "recovery.ui.tui.screens.explore",
    "recovery.ui.tui.screens.verify", "recovery.ui.tui.screens.log",
    "yaml", "pyudev", "zstandard", "blake3",
)


def fresh_interpreter(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                          capture_output=True, text=True, timeout=120).stdout


def is_later(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in LATER)


def test_the_tui_module_loads_nothing_the_first_frame_does_not_need() -> None:
    loaded = json.loads(fresh_interpreter(
        "import json, sys; import recovery.ui.tui.app; print(json.dumps(list(sys.modules)))"))
    assert "recovery.ui.tui.screens.home" in loaded
    assert sorted(m for m in loaded if is_later(m)) == []
