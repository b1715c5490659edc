"""One exception hierarchy for everything a technician can run into.

Every error carries a stable exit code (the CLI's exit status), a one-line title that names
the problem and the thing it happened to, and an action that says what to do about it.
The README lists the codes; keep them stable, scripts depend on them.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class Hint(enum.Enum):
    """A next step each shell names its own way: the CLI with a flag, the TUI with a key
    or a switch. The engine's action text states the facts; the shell adds the hint."""

    RESUME_DELTA = "resume-delta"  # restore the same image again, writing only what differs
    CONFIRM = "confirm"  # confirm the destructive step
    RESCUE = "rescue"  # capture again in rescue mode (keep going past unreadable areas)
    ALLOW_FAILING_TARGET = "allow-failing-target"  # write to a failing disk all the same
    NO_DELTA = "no-delta"  # restore everything, not only the chunks that differ
    LAYOUT_SAME = "layout-same"  # restore the image's exact layout, nothing resized
    FIT_LAYOUT = "fit-layout"  # let Windows be shrunk to fit instead of the exact layout
    SYSTEM_SIZE = "system-size"  # choose another size for the Windows partition
    LIST_DISKS = "list-disks"  # look at the disks this PC sees, with their numbers
    LIST_IMAGES = "list-images"  # look at the store's images and what each holds
    VERIFY_IMAGE = "verify-image"  # verify the image against its hashes
    ALL_PARTITIONS = "all-partitions"  # capture every partition of the disk
    CHOOSE_PARTITION = "choose-partition"  # name the partition (of an image or a disk)
    IMAGE_NAME = "image-name"  # give the image another name
    NEW_STORE = "new-store"  # make this folder a store by capturing into it
    MOUNT_IMAGE = "mount-image"  # open the partition through ntfs-3g instead
    POINTS_LIST = "points-list"  # list the restore points of the Windows volume
    POINTS_HISTORY = "points-history"  # list the rollbacks done on the Windows volume
    POINTS_UNDO = "points-undo"  # undo the rollback
    UNMOUNT_IMAGE = "unmount-image"  # take down an image mounted earlier
    NETWORK_PORT = "network-port"  # name the Ethernet port a static address goes to
    RESUME_CAPTURE = "resume-capture"  # capture the same disk into the same store again


class RecoveryError(Exception):
    """Base of every error the engine raises on purpose."""

    code: ClassVar[int] = 1
    kind: ClassVar[str] = "error"

    def __init__(self, title: str, action: str = "", hint: Hint | None = None) -> None:
        super().__init__(title)
        self.title = title
        self.action = action
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.title} {self.action}".strip()

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"code": self.code, "kind": self.kind, "title": self.title,
                                    "action": self.action}
        if self.hint is not None:
            found["hint"] = self.hint.value
        return found


class UsageError(RecoveryError):
    code = 2
    kind = "usage"


# --- sources and devices -------------------------------------------------------------------
class SourceError(RecoveryError):
    """The disk or file to read is missing, unreadable or not a whole disk."""

    code = 10
    kind = "source"


class DeviceIOError(RecoveryError):
    """A read or write failed at the device level (bad sector, unplugged drive)."""

    code = 11
    kind = "device-io"
    # The device is gone (unplugged, ENODEV/ENXIO), not one bad sector: a rescue read stops.
    gone = False


class UnreadableAreasError(DeviceIOError):
    """A rescue capture completed, but some used bytes could not be read (stored as
    zeros). Not raised: the exit status that tells scripts the image is not whole."""

    code = 14
    kind = "unreadable-areas"


class UnsupportedLayoutError(RecoveryError):
    """The partition table or file system is one we cannot handle safely."""

    code = 12
    kind = "unsupported-layout"


class ToolError(RecoveryError):
    """An external program (sgdisk, ntfs-3g, ...) failed or is missing."""

    code = 13
    kind = "tool"


# --- image store ---------------------------------------------------------------------------
class StoreError(RecoveryError):
    """The store path is not a usable image store."""

    code = 20
    kind = "store"


class StoreFullError(StoreError):
    code = 21
    kind = "store-full"


class ImageNotFoundError(StoreError):
    code = 22
    kind = "image-not-found"


class ImageDamagedError(StoreError):
    """Manifest, index or chunks do not match their hashes, or are missing."""

    code = 23
    kind = "image-damaged"


class ImageIncompleteError(StoreError):
    code = 24
    kind = "image-incomplete"


class ImagePathNotFoundError(RecoveryError):
    """No such file or folder in the opened partition of an image."""

    code = 25
    kind = "image-path-not-found"


class DestinationError(RecoveryError):
    """Files taken out of an image cannot be written where the technician asked."""

    code = 26
    kind = "destination"


class StoreLockedError(StoreError):
    """Another job holds a lock on the store that this job cannot share."""

    code = 27
    kind = "store-locked"


class StoreReadOnlyError(StoreError):
    """The store (a share or drive) cannot be written."""

    code = 28
    kind = "store-read-only"


# --- network stores ------------------------------------------------------------------------
class NetworkError(StoreError):
    """A network store's server cannot be reached, or stopped answering during a job."""

    code = 70
    kind = "network"


class LoginError(StoreError):
    """The server refused the user, password or key, or its host key is unknown or changed."""

    code = 71
    kind = "login"


# --- safety gate ---------------------------------------------------------------------------
class SafetyError(RecoveryError):
    """A destructive action was refused before anything was written."""

    code = 30
    kind = "safety"


class NotConfirmedError(SafetyError):
    code = 31
    kind = "not-confirmed"


class TargetInUseError(SafetyError):
    """Target holds the store, the live system, the source, or is mounted."""

    code = 32
    kind = "target-in-use"


class TargetTooSmallError(SafetyError):
    code = 33
    kind = "target-too-small"


class TargetReadOnlyError(SafetyError):
    code = 34
    kind = "target-read-only"


class SectorSizeMismatchError(SafetyError):
    code = 35
    kind = "sector-size-mismatch"


class DiskChangedError(SafetyError):
    """The node now names another disk (or the disk changed) since the plan was made."""

    code = 36
    kind = "disk-changed"


class SourceInUseError(SafetyError):
    """Capture refused: the store is on the disk being read, or the source is the live
    medium."""

    code = 37
    kind = "source-in-use"


class FailingTargetError(SafetyError):
    """The target's SMART health says it is failing; restore only when the technician
    insists (--allow-failing-target, or yes to the TUI's question)."""

    code = 38
    kind = "target-failing"


# --- verification --------------------------------------------------------------------------
class VerificationError(RecoveryError):
    """Read-back or image verification found differences; `problems` lists every one."""

    code = 40
    kind = "verification"

    def __init__(self, title: str, action: str = "", problems: list[str] | None = None,
                 hint: Hint | None = None) -> None:
        super().__init__(title, action, hint)
        self.problems = problems or []

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "problems": self.problems}


# --- Windows volumes and registry ----------------------------------------------------------
class VolumeStateError(RecoveryError):
    """The Windows volume is hibernated, dirty, encrypted or mounted: writing would lose data."""

    code = 50
    kind = "volume-state"


class HiveError(RecoveryError):
    """A registry hive is corrupt or cannot be used."""

    code = 51
    kind = "hive"


class RestorePointNotFoundError(RecoveryError):
    code = 52
    kind = "restore-point-not-found"


class UndoError(RecoveryError):
    code = 53
    kind = "undo"


# --- the machine ---------------------------------------------------------------------------
class BusyError(RecoveryError):
    """Another job (on another console, or the unattended service) runs on this PC."""

    code = 60
    kind = "busy"


class CancelledError(RecoveryError):
    """The user (or a signal) stopped the job; what was done so far is safe."""

    code = 130
    kind = "cancelled"


def all_error_classes() -> list[type[RecoveryError]]:
    """Every error class, for the README table and for tests that keep codes unique."""
    found: list[type[RecoveryError]] = []
    pending: list[type[RecoveryError]] = [RecoveryError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.code)
