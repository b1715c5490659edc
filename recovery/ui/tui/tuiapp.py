"""Typed access to the running RecoveryApp from screens (without an import cycle)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.app import App

if TYPE_CHECKING:
    from recovery.ui.tui.app import RecoveryApp


def tui_app(app: App[Any]) -> RecoveryApp:
    return cast("RecoveryApp", app)
