"""Rendering engine events and results for a terminal: progress bars on stderr, text on stdout."""

from __future__ import annotations

import json
import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from recovery.errors import Hint, RecoveryError, VerificationError
from recovery.events import Event, Notice, PhaseFinished, PhaseStarted
from recovery.events import Progress as ProgressEvent


class ProgressRenderer:
    """An EventSink that draws one bar per phase with rate and ETA on stderr."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        # Text printed on stdout while bars are live goes above them when both are the same
        # terminal; a piped stdout stays clean.
        same_terminal = sys.stdout.isatty()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                                 DownloadColumn(binary_units=False), TransferSpeedColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=False,
                                 redirect_stdout=same_terminal, redirect_stderr=False)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressRenderer:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            self.tasks[event.phase] = self.progress.add_task(event.description,
                                                             total=event.total_bytes or None)
        elif isinstance(event, ProgressEvent) and event.phase in self.tasks:
            self.progress.update(self.tasks[event.phase], completed=event.done_bytes)
        elif isinstance(event, PhaseFinished) and event.phase in self.tasks:
            task = self.tasks[event.phase]
            total = self.progress.tasks[task].total
            self.progress.update(task, completed=total if total else event.done_bytes)
        elif isinstance(event, Notice):
            style = "yellow" if event.level == "warning" else "cyan"
            prefix = "warning: " if event.level == "warning" else ""
            self.progress.console.print(f"[{style}]{prefix}{event.message}[/{style}]",
                                        markup=True, highlight=False)


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# How the command line says each engine hint (recovery.errors.Hint).
CLI_HINTS = {
    Hint.RESUME_DELTA: "Run the same `recovery restore` again with --delta.",
    Hint.CONFIRM: "Run again with --yes to go ahead.",
    Hint.RESCUE: "Run the capture again with --rescue: it keeps going past unreadable areas "
                 "and retries them last.",
    Hint.ALLOW_FAILING_TARGET: "To write to this disk anyway (the restored Windows may not "
                               "survive), run again with --allow-failing-target.",
    Hint.NO_DELTA: "Run the restore without --delta.",
    Hint.LAYOUT_SAME: "Use --layout same.",
    Hint.FIT_LAYOUT: "Leaving out --layout same lets Windows be shrunk to fit.",
    Hint.SYSTEM_SIZE: "Give that size with --system-size (e.g. --system-size 200G), or leave "
                      "it out to fill the disk.",
    Hint.LIST_DISKS: "`recovery disks` lists the disks with their partitions and ids.",
    Hint.LIST_IMAGES: "`recovery images --store STORE` lists the images and what each holds.",
    Hint.VERIFY_IMAGE: "`recovery verify --store STORE IMAGE` checks the image.",
    Hint.ALL_PARTITIONS: "Run `recovery capture` with --partitions all.",
    Hint.CHOOSE_PARTITION: "Give it with --partition N.",
    Hint.IMAGE_NAME: "Give the name with --name (leave it out for a new one).",
    Hint.NEW_STORE: "`recovery capture SOURCE --store PATH` creates a new store.",
    Hint.MOUNT_IMAGE: "Try `recovery mount`, which reads it through ntfs-3g.",
    Hint.POINTS_LIST: "`recovery restore-points list VOLUME` lists them.",
    Hint.POINTS_HISTORY: "`recovery restore-points history VOLUME` lists the records.",
    Hint.POINTS_UNDO: "Run `recovery restore-points undo VOLUME RECORD`.",
    Hint.UNMOUNT_IMAGE: "`recovery unmount MOUNTPOINT` takes an image down.",
    Hint.NETWORK_PORT: "Name it with --interface (`recovery network` lists the ports).",
    Hint.RESUME_CAPTURE: "Run the same `recovery capture SOURCE --store STORE` command "
                         "again (with --rescue if it had it): it resumes.",
}


def cli_action(error: RecoveryError) -> str:
    """The engine's advice, with the flag that carries it out on this command line."""
    hint = CLI_HINTS.get(error.hint) if error.hint is not None else None
    return " ".join(part for part in (error.action, hint) if part)


def print_error(error: RecoveryError, as_json: bool) -> None:
    if as_json:
        print_json({"ok": False, "error": {**error.as_dict(), "action": cli_action(error)}})
        return
    console = Console(stderr=True, highlight=False)
    console.print(f"[bold red]error {error.code}:[/bold red] {error.title}", markup=True)
    if isinstance(error, VerificationError):
        for problem in error.problems[:50]:
            console.print(f"  - {problem}", markup=False)
        if len(error.problems) > 50:
            console.print(f"  ... and {len(error.problems) - 50} more", markup=False)
    if cli_action(error):
        console.print(f"[bold]what to do:[/bold] {cli_action(error)}", markup=True)
