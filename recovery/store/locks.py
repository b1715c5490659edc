"""Store locks: many technicians' jobs on one store at once, prune only when alone.

Modelled on restic's repository locks (docs/store-locking.md has the whole design):

    STORE/locks/<random id>.yaml    one file per running job: shared or exclusive, the job,
                                    the image it writes or reads, host, boot id, pid, the
                                    process's start time, when it was taken

Capture, restore and verify take a shared lock; deleting images and pruning chunks take an
exclusive one. Taking a lock writes the file first and only then looks at the others (so of
two jobs that start together, the later one always sees the earlier); a conflict removes
the file again and the job is refused, naming the job, host and process in the way.

A lock is stale, and is removed by whoever finds it, when its process has ended (same host
and boot: the pid is gone or belongs to a process started at another time; or the same PC,
by its network cards' hardware addresses, has been restarted since) or when it has
not been refreshed for STALE_SECONDS, judged by the store's own clock (the file's mtime
against that of the lock just written: PCs booted from a stick often have wrong clocks).
A running job rewrites its lock every REFRESH_SECONDS.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recovery.errors import StoreError, StoreLockedError, StoreReadOnlyError
from recovery.model.manifest import utc_timestamp
from recovery.store import files

LOCKS_DIR = "locks"
REFRESH_SECONDS = 300.0
STALE_SECONDS = 1800.0
RELEASE_WAIT_SECONDS = 5.0
_SUFFIX = ".yaml"


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about the job holding it."""

    id: str
    exclusive: bool
    job: str  # capture, restore, verify, delete, prune
    image: str  # the image the job writes or reads ("" for prune)
    host: str
    boot_id: str  # tells two live-stick PCs that share a host name apart
    pid: int
    process_start: int  # /proc/PID/stat start time: a reused pid is another process
    created: str
    # The PC's network hardware addresses (hashed): a lock of another boot of this same PC
    # belongs to a job that ended when the PC restarted. "" when the PC has no NIC.
    machine: str = ""

    def describe(self) -> str:
        what = f"{self.job} of image {self.image}" if self.image else self.job
        return f"{what} (process {self.pid} on {self.host}, since {self.created})"


@dataclass
class _Found:
    info: LockInfo
    mtime: float


@dataclass
class StoreLock:
    """A held lock; `release` (or leaving the `with` block) removes its file."""

    root: Path
    info: LockInfo
    refresh_seconds: float = REFRESH_SECONDS
    lost: str = ""  # why the lock is no longer ours (removed as stale by another job)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.root / LOCKS_DIR / f"{self.info.id}{_SUFFIX}"

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def claim(self, image: str) -> None:
        """Record the image this job now writes or reads (capture learns it late)."""
        self.info = LockInfo(**{**asdict(self.info), "image": image})
        _write(self.path, self.info, self.root)

    def check(self) -> None:
        """StoreError when another job removed this lock as stale: its guarantees are gone."""
        if self.lost or not self.path.is_file():
            raise StoreError(
                f"The lock of this {self.info.job} on the store {self.root} was removed by "
                "another job (it looked stale: not refreshed for "
                f"{STALE_SECONDS / 60:.0f} minutes).",
                "Run the same job again; a capture resumes, a restore resumes as a delta "
                "restore.")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # Bounded: a refresh stuck in a call to a share that stopped answering must
            # not keep the job from ending and saying so (the thread is a daemon).
            self._thread.join(timeout=RELEASE_WAIT_SECONDS)
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                if not self.path.is_file():
                    self.lost = "removed"
                    return
                _write(self.path, self.info, self.root)
            except (OSError, StoreError):
                # The share stopped answering (cifs: EHOSTDOWN). The job's own reads and
                # writes fail too and say so; if the server comes back, so does the lock.
                continue


def acquire(root: Path, job: str, *, exclusive: bool, image: str = "",
            wait_seconds: float = 10.0, refresh_seconds: float = REFRESH_SECONDS,
            stale_seconds: float = STALE_SECONDS) -> StoreLock:
    """Take a lock on the store at `root`; StoreLockedError after `wait_seconds` of
    conflicts. Retries with random pauses: two jobs that collide may both back off."""
    info = _own_info(job, exclusive, image)
    lock = StoreLock(root, info, refresh_seconds)
    deadline = time.monotonic() + wait_seconds
    while True:
        _write(lock.path, info, root)
        blocking = conflicts(root, info, stale_seconds)
        if not blocking:
            break
        with contextlib.suppress(OSError):
            lock.path.unlink()
        if time.monotonic() >= deadline:
            raise _locked_error(root, info, blocking)
        time.sleep(random.uniform(0.05, 0.5))
    lock._thread = threading.Thread(target=lock._refresh_loop, daemon=True,
                                    name=f"store-lock-{info.id}")
    lock._thread.start()
    return lock


def conflicts(root: Path, own: LockInfo, stale_seconds: float = STALE_SECONDS
              ) -> list[LockInfo]:
    """The live locks that keep `own` from being held; stale ones are removed on the way."""
    return [item for item in live_locks(root, own, stale_seconds)
            if own.exclusive or item.exclusive]


def live_locks(root: Path, own: LockInfo | None = None,
               stale_seconds: float = STALE_SECONDS) -> list[LockInfo]:
    """Every other job's lock that is not stale (removing the stale ones)."""
    now = _store_now(root, own)
    live = []
    for found in _read_all(root):
        if own is not None and found.info.id == own.id:
            continue
        if stale_reason(found.info, found.mtime, now, stale_seconds):
            with contextlib.suppress(OSError):
                (root / LOCKS_DIR / f"{found.info.id}{_SUFFIX}").unlink()
            continue
        live.append(found.info)
    return live


def stale_reason(info: LockInfo, mtime: float, now: float,
                 stale_seconds: float = STALE_SECONDS) -> str:
    """Why the lock is stale, or "" when its job may still be running."""
    if info.boot_id == _boot_id() and info.host == socket.gethostname():
        if _process_start(info.pid) != info.process_start:
            return f"process {info.pid} on this PC has ended"
        return ""
    if info.machine and info.machine == _machine_id() and info.boot_id != _boot_id():
        # A stick-booted PC that failed mid-job (its share went away) and was restarted
        # to run the same job again: without this its own capture would be refused.
        return "this PC has been restarted since"
    if now - mtime > stale_seconds:
        return f"not refreshed for {(now - mtime) / 60:.0f} minutes"
    return ""


def _store_now(root: Path, own: LockInfo | None) -> float:
    """The store's clock: the mtime of our own, freshly written lock file."""
    if own is not None:
        with contextlib.suppress(OSError):
            return (root / LOCKS_DIR / f"{own.id}{_SUFFIX}").stat().st_mtime
    return time.time()


def _read_all(root: Path) -> list[_Found]:
    folder = root / LOCKS_DIR
    found = []
    try:
        entries = sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        if path.name.startswith(".") or not path.name.endswith(_SUFFIX):
            continue
        try:
            document = yaml.safe_load(path.read_text())
            mtime = path.stat().st_mtime
            found.append(_Found(_parse(document), mtime))
        except (OSError, yaml.YAMLError, UnicodeDecodeError, TypeError, ValueError):
            # Vanished while listed (released), or unreadable: an unreadable lock is
            # treated as held by an unknown exclusive job until it ages out.
            with contextlib.suppress(OSError):
                found.append(_Found(_unknown(path), path.stat().st_mtime))
    return found


def _parse(document: Any) -> LockInfo:
    if not isinstance(document, dict):
        raise TypeError("not a mapping")
    values = {name: document[name] for name in LockInfo.__dataclass_fields__
              if name != "machine"}
    values["machine"] = str(document.get("machine", ""))  # not in older lock files
    info = LockInfo(**values)
    if not isinstance(info.pid, int) or not isinstance(info.exclusive, bool):
        raise ValueError("bad lock")
    return info


def _unknown(path: Path) -> LockInfo:
    return LockInfo(id=path.name.removesuffix(_SUFFIX), exclusive=True,
                    job="unknown job (unreadable lock file)", image="", host="?",
                    boot_id="?", pid=0, process_start=0, created="?")


def _write(path: Path, info: LockInfo, root: Path) -> None:
    temp = files.temp_name(path)
    try:
        path.parent.mkdir(exist_ok=True)
        temp.write_text(yaml.safe_dump(asdict(info), sort_keys=False))
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StoreReadOnlyError(
                f"The store {root} is read-only ({exc.strerror}); a job that writes "
                "cannot use it.", "Mount the share or drive read-write (check the "
                "share's permissions for this user) and try again.") from exc
        raise files.write_error(path, root, exc) from exc


def _own_info(job: str, exclusive: bool, image: str) -> LockInfo:
    pid = os.getpid()
    return LockInfo(id=secrets.token_hex(8), exclusive=exclusive, job=job, image=image,
                    host=socket.gethostname(), boot_id=_boot_id(), pid=pid,
                    process_start=_process_start(pid), created=utc_timestamp(),
                    machine=_machine_id())


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _machine_id(net: Path = Path("/sys/class/net")) -> str:
    """A hash of the burnt-in hardware addresses of this PC's network cards, "" if none.

    Not the DMI UUID or serial: cheap boards often share placeholder values, and two PCs
    taken for one would remove each other's live locks. A MAC address is unique by design
    (addr_assign_type 0: the card's own, not a random or a typed one)."""
    addresses = []
    with contextlib.suppress(OSError):
        for link in sorted(net.iterdir()):
            with contextlib.suppress(OSError):
                if not (link / "device").exists():
                    continue  # virtual: bridges, tunnels, the loopback
                if (link / "addr_assign_type").read_text().strip() != "0":
                    continue
                address = (link / "address").read_text().strip()
                if address and address != "00:00:00:00:00:00":
                    addresses.append(address)
    if not addresses:
        return ""
    return hashlib.sha256(" ".join(addresses).encode()).hexdigest()[:16]


def _process_start(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks after boot); -1 when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    # The command name (field 2) is in parentheses and may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _locked_error(root: Path, own: LockInfo, blocking: list[LockInfo]) -> StoreLockedError:
    jobs = "; ".join(item.describe() for item in blocking)
    if own.exclusive:
        return StoreLockedError(
            f"The {own.job} cannot start: the store {root} is in use by {jobs}.",
            f"Wait until {'that job has' if len(blocking) == 1 else 'those jobs have'} "
            f"finished and run it again. A job that crashed is recognised after "
            f"{STALE_SECONDS / 60:.0f} minutes (at once on the same PC).")
    return StoreLockedError(
        f"The {own.job} cannot start: the store {root} is locked by {jobs}.",
        "Wait until it has finished (it is deleting images or unused chunks) and run the "
        "same command again.")
