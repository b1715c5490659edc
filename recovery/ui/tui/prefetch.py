"""The files `recovery tui` reads up to its first frame, listed at build time.

On the live image every module is read cold from the squashfs on the CD: under TCG,
`import recovery.ui.tui.app` took 9.6-9.9 s after dropping the page cache against 2.7-3.5 s
warm, most of the difference the kernel decompressing blocks while Python waited. The
image's build runs `python3 -m recovery.ui.tui.prefetch LIST` in its root; recovery-console
reads the listed files (`xargs cat`) in the background as it starts on tty1, so the second
CPU decompresses them ahead of Python's imports (image-build/build.sh, rootfs).

The list is what a headless run of the console app up to the home screen's first frame
loaded: the interpreter, then every module's compiled file (the image has them all), source
or extension, in import order.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def first_frame_modules() -> None:
    """Run the console app headless until the home screen's first frame, in this process
    (it is one that exists only to list what that loads)."""
    from recovery.ui.tui.actionlog import ActionLog
    from recovery.ui.tui.app import ConsoleRecoveryApp
    from recovery.ui.tui.screens.home import HomeScreen

    def first_frame_drawn(screen: HomeScreen) -> None:
        screen.app.exit()  # instead of the workers: they load the engine after the frame

    HomeScreen.start_workers = first_frame_drawn  # type: ignore[method-assign,assignment]
    with tempfile.TemporaryDirectory() as scratch:
        app = ConsoleRecoveryApp(None, ActionLog(Path(scratch) / "tui.log"))
        app.run(headless=True, size=(80, 25))


def loaded_files() -> list[str]:
    """The interpreter and the file behind each module loaded so far, in import order."""
    files = [os.path.realpath(sys.executable)]
    for module in list(sys.modules.values()):
        # The compiled file Python read, or the source when none was written (frozen and
        # built-in modules have neither on disk).
        for path in (getattr(module, "__cached__", None), getattr(module, "__file__", None)):
            if path and os.path.isfile(path):
                files.append(os.path.realpath(path))
                break
    return list(dict.fromkeys(files))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m recovery.ui.tui.prefetch LIST", file=sys.stderr)
        return 2
    first_frame_modules()
    Path(argv[0]).write_text("".join(f"{path}\n" for path in loaded_files()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
