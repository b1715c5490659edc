"""Every failure in a TUI worker ends on the screen and in the log, never in a dead console.

Textual ends the app when a worker raises. The engine raises RecoveryError on purpose, but
pyudev, pyfsntfs and the file system raise OSError too (a drive pulled while it is read),
and a bug raises anything: `shown_errors` turns each into an error dialog with a title and
an action, and logs it with its traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from recovery.errors import DeviceIOError, RecoveryError

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

log = logging.getLogger("recovery.tui")
P = ParamSpec("P")
R = TypeVar("R")


def as_recovery_error(exc: BaseException, doing: str) -> RecoveryError:
    """The error a technician can act on for any exception raised while `doing`."""
    if isinstance(exc, RecoveryError):
        return exc
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return DeviceIOError(
            f"{doing[:1].upper()}{doing[1:]} failed: {exc.strerror or exc}{where}.",
            "Check that the drive is still plugged in and its cable is firm, then try again; "
            "the log (l) has the details.")
    return RecoveryError(
        f"Internal error while {doing}: {exc!r}",
        "Save the log (l, then s) and attach it to a bug report; nothing was written after "
        "this point.")


def report(app: App[Any], exc: BaseException, doing: str) -> RecoveryError:
    """Log `exc` with its traceback and show it; safe from a worker thread or the UI's."""
    from recovery.ui.tui.tuiapp import tui_app

    error = as_recovery_error(exc, doing)
    if error is not exc:  # show_error logs the error itself; the traceback goes here
        log.error("%s: %r", doing, exc, exc_info=exc)
    recovery_app = tui_app(app)
    try:
        recovery_app.call_from_thread(recovery_app.show_error, error)
    except RuntimeError:  # already on the UI thread
        recovery_app.show_error(error)
    return error


def shown_errors(doing: str) -> Callable[[Callable[P, R]], Callable[P, R | None]]:
    """Decorate a worker method (of a screen or widget): any exception it raises is shown
    and logged as `doing` failing, and the worker ends quietly."""
    def decorate(method: Callable[P, R]) -> Callable[P, R | None]:
        @functools.wraps(method)
        def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
            # Taken first: some engine calls leave a worker thread without Textual's
            # active-app context, and `node.app` then raises.
            app = cast("DOMNode", args[0]).app
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                report(app, exc, doing)
                return None
        return run
    return decorate
