"""How the TUI words the engine's hints (recovery.errors.Hint): a key, a switch or a
screen, never a command-line flag. Used by the dialogs and by the action log."""

from __future__ import annotations

from recovery.errors import Hint, RecoveryError

# How the TUI says each engine hint (recovery.errors.Hint): a key or a switch, not a flag.
TUI_HINTS = {
    Hint.RESUME_DELTA: "Restore the same image to this disk again with "
                       "'Delta restore: write only chunks that differ' ticked.",
    Hint.CONFIRM: "Confirm in the dialog to go ahead.",
    Hint.RESCUE: "Capture again with 'Rescue mode' ticked (r): it keeps going past unreadable "
                 "areas and retries them last.",
    Hint.ALLOW_FAILING_TARGET: "To write to this disk anyway (the restored Windows may not "
                               "survive), choose it again and answer Yes when asked.",
    Hint.NO_DELTA: "Untick 'Delta restore' and start again.",
    Hint.LAYOUT_SAME: "Choose a disk at least as large as the original: its layout is then "
                      "kept as it is.",
    Hint.FIT_LAYOUT: "The restore wizard shrinks Windows to fit when the image allows it.",
    Hint.SYSTEM_SIZE: "Type that size in the 'Windows size' field (e.g. 300M) and Enter, or "
                      "empty it to fill the disk.",
    Hint.LIST_DISKS: "The home screen lists the disks (F5 refreshes).",
    Hint.LIST_IMAGES: "Open the store (Enter on it on the home screen) to see its images.",
    Hint.VERIFY_IMAGE: "Verify the image (v on the home screen).",
    Hint.ALL_PARTITIONS: "Tick at least one partition in the capture wizard.",
    Hint.CHOOSE_PARTITION: "Choose it in the list.",
    Hint.IMAGE_NAME: "Type another name in the capture wizard (or leave it empty).",
    Hint.NEW_STORE: "Choose a drive in the capture wizard: a capture creates a store there.",
    Hint.MOUNT_IMAGE: "Restore the image and check the volume in Windows.",
    Hint.POINTS_LIST: "The restore points screen (p on the home screen) lists them.",
    Hint.POINTS_HISTORY: "The restore points screen lists the rollbacks (u).",
    Hint.POINTS_UNDO: "Undo it on the restore points screen (u).",
    Hint.UNMOUNT_IMAGE: "Use the shell (s) to unmount it.",
    Hint.NETWORK_PORT: "Type its name (e.g. enp3s0) in the network dialog's port field.",
    Hint.RESUME_CAPTURE: "Capture the same disk into the same store again (c on the home "
                         "screen, 'Rescue mode' as before): it resumes.",
}


def tui_action(error: RecoveryError) -> str:
    """The engine's advice, with the key or switch that carries it out in the TUI."""
    hint = TUI_HINTS.get(error.hint) if error.hint is not None else None
    return " ".join(part for part in (error.action, hint) if part)


def tui_message(error: RecoveryError) -> str:
    """The whole message as the TUI shows it inline: the problem, then tui_action's advice
    (str(error) would leave the hint out, and a hint is the step to take)."""
    return " ".join(part for part in (error.title, tui_action(error)) if part)
