"""What screens need of the running app, as a protocol: the app (recovery.ui.tui.app)
imports every screen, so screens name this instead of it (no import cycle, not even for
the type checker). RecoveryApp implements it; app.py checks that it does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from textual.app import App
from textual.notifications import SeverityLevel

if TYPE_CHECKING:
    from recovery.errors import RecoveryError
    from recovery.ui.tui.actionlog import ActionLog
    from recovery.ui.tui.backend import Backend

T = TypeVar("T")


class TuiApp(Protocol):
    @property
    def HEADER_ICON(self) -> str: ...  # the header's icon: the Linux console has fewer glyphs

    @property
    def PLAIN_TICK_BOXES(self) -> bool: ...  # tick boxes as text, "[X]" / "[ ]" (console)

    @property
    def backend(self) -> Backend: ...

    @property
    def log_file(self) -> ActionLog: ...

    def show_error(self, error: RecoveryError) -> None: ...

    def open_shell(self) -> None: ...

    def power(self, action: str) -> None: ...

    def call_from_thread(self, callback: Callable[..., T], *args: Any, **kwargs: Any
                         ) -> T: ...

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...

    def notify(self, message: str, *, title: str = "",
               severity: SeverityLevel = "information") -> None: ...


def tui_app(app: App[Any]) -> TuiApp:
    """The running app as screens see it (in tests too, always a RecoveryApp)."""
    return cast(TuiApp, app)
