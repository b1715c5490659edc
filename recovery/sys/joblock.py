"""One job per machine: a lock file under /run that every shell takes before a job.

The live image runs `recovery tui` on tty1 and on ttyS0 at once, the unattended service may
run a job, and a technician may type `recovery restore` in a shell: two jobs on one PC can
write the disk the other is reading, and the idle console's store scan would mount a
partition of the disk being restored. So a job holds an exclusive flock(2) on
/run/recovery/job.lock and writes into it who holds it (pid, console, what, which disks),
so that the other consoles can say what is going on; a store scan holds a shared lock,
which a job waits for (scans take seconds) while a job's lock makes the scan mount nothing.

flock is released by the kernel when its holder dies, so a crash leaves no lock behind. A
holder record whose pid is dead while the lock is still held (the file descriptor went to an
orphaned child) is stale: the file is replaced, which leaves the orphan holding a lock on a
file nobody looks at any more.

RECOVERY_LOCK_DIR moves the lock (each test session uses its own, so parallel runs on one
machine do not see each other's jobs).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from recovery.errors import BusyError

DEFAULT_DIR = Path("/run/recovery")
LOCK_NAME = "job.lock"
POLL_SECONDS = 0.1
# How long a job waits for another console's store scan (which holds the shared lock).
SCAN_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class JobHolder:
    """Who holds the machine's job lock, as the other consoles show it."""

    pid: int
    console: str  # "tty1", "ttyS0", "pts/2", "unattended", "" when unknown
    what: str  # "restore of image win10 to /dev/sdb"
    disks: tuple[str, ...]  # the disks (device nodes or image files) the job touches
    started: str  # UTC, ISO 8601

    def describe(self) -> str:
        where = f"on {self.console}" if self.console else "in another program"
        since = self.started[11:16] if len(self.started) >= 16 else "?"
        return f"{self.what} ({where}, pid {self.pid}, started {since} UTC)"

    def touches(self, node: Path | str) -> bool:
        wanted = {str(node), os.path.realpath(node)}
        return any(d in wanted or os.path.realpath(d) in wanted for d in self.disks)

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process, alive
        return True


def lock_dir() -> Path:
    return Path(os.environ.get("RECOVERY_LOCK_DIR") or DEFAULT_DIR)


def this_console() -> str:
    """The terminal this process runs on, as a technician names it ("tty1", "ttyS0"), or
    what RECOVERY_CONSOLE says (the unattended service has no terminal of its own)."""
    if os.environ.get("RECOVERY_CONSOLE"):
        return os.environ["RECOVERY_CONSOLE"]
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.ttyname(fd).removeprefix("/dev/")
    return ""


def _parse(text: str) -> JobHolder | None:
    try:
        data = json.loads(text)
        return JobHolder(int(data["pid"]), str(data["console"]), str(data["what"]),
                         tuple(str(d) for d in data["disks"]), str(data["started"]))
    except (ValueError, KeyError, TypeError):
        return None


class JobLock:
    """The machine's job lock. Each `hold`/`shared` opens its own file description, so two
    holders in one process exclude each other like two processes do."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or lock_dir()) / LOCK_NAME

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _record(self) -> JobHolder | None:
        try:
            return _parse(self.path.read_text(encoding="utf-8"))
        except OSError:
            return None

    def holder(self) -> JobHolder | None:
        """The job running now, or None (no job, only store scans, or a stale record)."""
        try:
            fd = self._open()
        except OSError:
            return None
        try:
            if _try_lock(fd, fcntl.LOCK_SH):
                return None  # nobody holds it exclusively, whatever the file still says
            record = self._record()
            return record if record is not None and record.alive() else None
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def hold(self, what: str, disks: Sequence[Path | str] = (), console: str | None = None,
             wait: float = SCAN_WAIT_SECONDS) -> Iterator[JobHolder]:
        """Hold the lock for one job; raises BusyError naming the job that runs already.

        Waits up to `wait` seconds while only store scans (shared holders) are in the way.
        """
        me = JobHolder(os.getpid(), this_console() if console is None else console, what,
                       tuple(str(d) for d in disks),
                       datetime.now(UTC).isoformat(timespec="seconds"))
        fd = self._acquire(me, wait)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
            os.fsync(fd)
            yield me
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # released: nobody mistakes the old record for a job
            os.close(fd)

    def _acquire(self, me: JobHolder, wait: float) -> int:
        deadline = time.monotonic() + wait
        while True:
            fd = self._open()
            if _try_lock(fd, fcntl.LOCK_EX):
                if os.fstat(fd).st_nlink > 0:
                    return fd
                os.close(fd)  # locked a file that was just replaced as stale: take the new
                continue
            os.close(fd)
            record = self._record()
            if record is not None and not record.alive():
                self._replace_stale()
                continue
            if record is not None:
                raise BusyError(
                    f"Another job is running on this PC: {record.describe()}.",
                    "Wait for it to finish (its console shows the progress), then start "
                    f"the {me.what} again.")
            if time.monotonic() > deadline:
                raise BusyError(
                    "Another console is looking at the drives (a store scan) and did not "
                    f"finish within {wait:.0f} s.",
                    f"Start the {me.what} again in a moment.")
            time.sleep(POLL_SECONDS)

    def _replace_stale(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @contextlib.contextmanager
    def shared(self) -> Iterator[JobHolder | None]:
        """Hold the lock shared while looking at drives (mounting to find stores); yields
        None, or the running job (then nothing may be mounted) without holding anything."""
        fd = self._open()
        try:
            if _try_lock(fd, fcntl.LOCK_SH):
                yield None
                return
            record = self._record()
            if record is None:
                yield JobHolder(0, "", "a job", (), "")  # one that is starting just now
            else:
                yield record if record.alive() else None
        finally:
            os.close(fd)


def machine_job(what: str, disks: Sequence[Path | str] = ()
                ) -> contextlib.AbstractContextManager[JobHolder]:
    """Hold the machine's job lock for one job (see JobLock.hold)."""
    return JobLock().hold(what, disks)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True
