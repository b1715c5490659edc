"""The list of files recovery-console reads ahead of `recovery tui` on the live image."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.tui.test_start_imports import fresh_interpreter


def test_the_prefetch_list_is_what_the_first_frame_reads(tmp_path: Path) -> None:
    """The list the image's build writes (recovery-console reads those files ahead)."""
    listing = tmp_path / "first-frame-files"
    fresh_interpreter("import sys; from recovery.ui.tui.prefetch import main; "
                      f"sys.exit(main([{str(listing)!r}]))")
    files = listing.read_text().splitlines()
    assert files[0] == os.path.realpath(sys.executable)
    assert all(Path(f).is_file() for f in files)
    assert len(set(files)) == len(files)
    # A .pyc where Python wrote one (the image's build compiles all), else the source.
    names = [Path(f).name.split(".")[0] for f in files if f.endswith((".py", ".pyc"))]
    for module in ("app", "home", "console", "disk_table", "_header", "_data_table"):
        assert module in names, module  # ours (the console's too) and Textual's widgets
    assert not any("/recovery/engine/" in f or "/recovery/store/" in f for f in files)
    assert "_emoji_codes" not in names  # no markup parsed before the first frame
