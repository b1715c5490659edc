"""Copy files and folders out of a captured partition into a folder on the live system.

Plan -> execute: every PATH is found and the destination checked (a folder, writable,
with room for everything) before anything is written. Files are written under a temporary
name and renamed when complete, so an interrupted or failed file never looks extracted.
Modification times are kept; names the destination cannot store are renamed and reported;
NTFS alternate data streams become extended attributes (user.NAME: ntfs-3g writes them
back as streams), or files beside their file where the destination has none. A file whose
data lies in a damaged chunk fails with a message naming it and the chunk; the others are
still extracted. The store is only read.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recovery.engine.explore import OpenedImage, open_image
from recovery.errors import CancelledError, DestinationError
from recovery.events import EventSink, PhaseTracker, phase
from recovery.fs.browse import READ_BLOCK, FileEntry
from recovery.fs.names import WINDOWS_RULES, FolderNames
from recovery.store.imageview import ReadAhead
from recovery.sys.mounts import mount_containing, read_mounts
from recovery.units import human_size

_TEMP = ".recovery-partial-"
_temp_numbers = itertools.count(1)
# Chunks decoded ahead of the file being copied: 24 MiB, well inside the view's cache.
_AHEAD_CHUNKS = 6
# Smaller files are not planned ahead: their data mostly sits in chunks already read, and
# looking up every small file's extents would cost more than it saves.
_PLAN_FROM = 256 * 1024
_ZEROS = bytes(READ_BLOCK)


@dataclass(frozen=True)
class ExtractRequest:
    store: Path
    image: str
    paths: tuple[str, ...]
    destination: Path
    partition: int | None = None
    create_destination: bool = False  # the TUI's typed folder may not exist yet


@dataclass
class ExtractSummary:
    image: str
    partition: int
    destination: Path
    files: int = 0
    folders: int = 0
    bytes: int = 0
    seconds: float = 0.0
    renamed: list[dict[str, str]] = field(default_factory=list)
    streams_as_files: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "image": self.image, "partition": self.partition,
                "destination": str(self.destination), "files": self.files,
                "folders": self.folders, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "renamed": self.renamed,
                "streams_as_files": self.streams_as_files, "failed": self.failed,
                "skipped": self.skipped}


@dataclass
class _Job:
    opened: OpenedImage
    summary: ExtractSummary
    tracker: PhaseTracker
    windows: bool
    cancel: threading.Event | None
    lookahead: _Lookahead
    folder_times: list[tuple[Path, int]] = field(default_factory=list)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError("Extraction stopped on request.",
                                 "Files already extracted are complete; the one being "
                                 "written was removed. Run it again to finish.")


def extract(request: ExtractRequest, events: EventSink,
            cancel: threading.Event | None = None) -> ExtractSummary:
    started = time.monotonic()
    with open_image(request.store, request.image, request.partition) as opened:
        tops = [opened.entry(path) for path in request.paths or ("/",)]
        if request.create_destination:
            try:
                request.destination.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _write_error(request.destination, exc) from exc
        total = _check_destination(request.destination, opened, tops)
        summary = ExtractSummary(request.image, opened.view.part.number, request.destination)
        windows = destination_fs(request.destination) in WINDOWS_RULES
        label = f"Extracting from {opened.where} to {request.destination}"
        readahead = ReadAhead(opened.view)
        try:
            with phase(events, "extract", label, total) as tracker:
                job = _Job(opened, summary, tracker, windows, cancel,
                           _Lookahead(opened, tops, readahead))
                names = FolderNames(windows, _existing(request.destination, windows))
                for top in tops:
                    if top.path == "/":
                        _copy_tree(job, top, request.destination, None)
                    else:
                        _copy_entry(job, top, request.destination, names)
                for folder, mtime in reversed(job.folder_times):
                    os.utime(folder, ns=(mtime, mtime))
        finally:
            readahead.close()
    summary.seconds = time.monotonic() - started
    return summary


def destination_fs(path: Path) -> str:
    mount = mount_containing(path, read_mounts())
    return mount.fs_type if mount else ""


def _existing(folder: Path, windows: bool) -> set[str]:
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    return {n.lower() for n in names} if windows else names


def _check_destination(dest: Path, opened: OpenedImage, tops: list[FileEntry]) -> int:
    """Bytes to copy; DestinationError when they cannot be written at `dest`."""
    if not dest.is_dir():
        raise DestinationError(f"The destination {dest} is not a folder.",
                               "Mount the target drive and give an existing folder on it.")
    if not os.access(dest, os.W_OK) or os.statvfs(dest).f_flag & os.ST_RDONLY:
        raise DestinationError(f"The destination {dest} is read-only.",
                               "Mount the target drive read-write, or choose another folder.")
    total = sum(e.size + sum(s for _, s in e.streams)
                for top in tops for e in opened.walk(top.path) if not e.is_dir)
    stat = os.statvfs(dest)
    free = stat.f_bavail * stat.f_frsize
    if total > free:
        raise DestinationError(
            f"The destination {dest} has {human_size(free)} free; the selection needs "
            f"{human_size(total)}.", "Choose fewer files or a bigger drive.")
    return total


def _copy_entry(job: _Job, entry: FileEntry, folder: Path, names: FolderNames) -> None:
    job.check_cancel()
    written = names.claim(entry.name)
    if written != entry.name:
        job.summary.renamed.append({"path": entry.path, "written_as": str(folder / written)})
    if entry.link_target:
        job.summary.skipped.append({"path": entry.path, "reason": "junction or symbolic "
                                    f"link to {entry.link_target}, not followed"})
        return
    if entry.is_dir:
        _copy_tree(job, entry, folder / written, entry)
    else:
        _copy_file(job, entry, folder, written)


def _copy_tree(job: _Job, entry: FileEntry, target: Path, own: FileEntry | None) -> None:
    try:
        target.mkdir(exist_ok=True)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    if own is not None:
        job.summary.folders += 1
        job.folder_times.append((target, own.modified_ns))
    names = FolderNames(job.windows, _existing(target, job.windows))
    for child in job.opened.list_dir(entry.path):
        _copy_entry(job, child, target, names)


class _Lookahead:
    """Keeps the read-ahead a few chunks ahead of the file being copied: files come in the
    copy's own order (folders sorted as list_dir gives them), their chunks from the file
    system's extents."""

    def __init__(self, opened: OpenedImage, tops: list[FileEntry], readahead: ReadAhead):
        self._opened = opened
        self._readahead = readahead
        self._files = _files_in_copy_order(opened, tops)
        self._queued: deque[tuple[str, int]] = deque()  # expected: path, chunk count
        self._paths: set[str] = set()

    def starting(self, entry: FileEntry) -> None:
        if entry.path in self._paths:  # everything before it has been read
            while self._queued:
                path, _ = self._queued.popleft()
                self._paths.discard(path)
                if path == entry.path:
                    break
        ahead = sum(count for _, count in self._queued)
        while ahead < _AHEAD_CHUNKS and (upcoming := next(self._files, None)) is not None:
            chunks = self._chunks_of(upcoming)
            self._readahead.expect(chunks)
            self._queued.append((upcoming.path, len(chunks)))
            self._paths.add(upcoming.path)
            ahead += len(chunks)

    def _chunks_of(self, entry: FileEntry) -> list[int]:
        if entry.size < _PLAN_FROM:
            return []
        size = self._opened.view.chunk_size
        numbers: dict[int, None] = {}  # ordered, without repeats
        for offset, length in self._opened.browser.ranges(entry.path):
            numbers.update(dict.fromkeys(range(offset // size, (offset + length - 1) // size + 1)))
        return list(numbers)


def _files_in_copy_order(opened: OpenedImage, tops: Iterable[FileEntry]) -> Iterator[FileEntry]:
    for top in tops:
        if top.link_target:
            continue
        if top.is_dir:
            yield from _files_in_copy_order(opened, opened.list_dir(top.path))
        else:
            yield top


def _copy_file(job: _Job, entry: FileEntry, folder: Path, written: str) -> None:
    job.lookahead.starting(entry)
    final = folder / written
    temp = folder / f"{_TEMP}{os.getpid()}-{next(_temp_numbers)}"
    try:
        done = _write_data(job, _blocks(job, entry, ""), temp, entry.size)
        os.utime(temp, ns=(entry.modified_ns, entry.modified_ns))
        os.replace(temp, final)
    except _ReadFailed as failure:
        temp.unlink(missing_ok=True)
        job.summary.failed.append({"path": entry.path, "problem": failure.problem})
        return
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _write_error(final, exc) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    job.summary.files += 1
    job.summary.bytes += done
    for stream, _ in entry.streams:
        _copy_stream(job, entry, final, stream)


def _copy_stream(job: _Job, entry: FileEntry, final: Path, stream: str) -> None:
    try:
        data = b"".join(_blocks(job, entry, stream))
    except _ReadFailed as failure:
        job.summary.failed.append({"path": f"{entry.path}:{stream}",
                                   "problem": failure.problem})
        return
    try:
        os.setxattr(final, f"user.{stream}", data)
    except OSError:
        # No user xattrs here (FAT, exFAT) or too big for one: a file beside it.
        names = FolderNames(job.windows, _existing(final.parent, job.windows))
        side = final.parent / names.claim(f"{final.name}:{stream}")
        try:
            side.write_bytes(data)
        except OSError as exc:
            raise _write_error(side, exc) from exc
        os.utime(side, ns=(entry.modified_ns, entry.modified_ns))
        job.summary.streams_as_files.append({"path": f"{entry.path}:{stream}",
                                             "written_as": str(side)})
    job.summary.bytes += len(data)
    job.tracker.advance(len(data))


class _ReadFailed(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _blocks(job: _Job, entry: FileEntry, stream: str) -> Iterator[bytes]:
    """The file's data; a failed read becomes _ReadFailed naming the file and the chunk."""
    reader = job.opened.browser.read(entry.path, stream)
    while True:
        job.check_cancel()
        try:
            block = next(reader)
        except StopIteration:
            return
        except OSError as exc:
            raise _ReadFailed(_read_problem(job.opened, entry, exc)) from exc
        yield block


def _read_problem(opened: OpenedImage, entry: FileEntry, exc: OSError) -> str:
    damaged = opened.damaged_in(entry.path) or list(opened.view.damaged.values())
    if damaged:
        where = ", ".join(f"chunk {r.number} (bytes {r.start}-{r.start + r.length - 1} of "
                          f"the partition)" for r in damaged)
        return (f"{entry.path} uses the image's damaged {where}: {damaged[0].problem} "
                "Nothing of it was written.")
    return f"{entry.path} cannot be read from {opened.where}: {exc}."


def _write_data(job: _Job, blocks: Iterator[bytes], temp: Path, size: int) -> int:
    """Write `blocks` to `temp`; all-zero blocks become holes (sparse files stay sparse)."""
    done = 0
    with open(temp, "wb") as out:
        for block in blocks:
            if block == (_ZEROS if len(block) == len(_ZEROS) else bytes(len(block))):
                out.seek(len(block), os.SEEK_CUR)
            else:
                out.write(block)
            done += len(block)
            job.tracker.advance(len(block))
        out.truncate(done)
    if done != size:
        raise _ReadFailed(f"{temp.name}: read {done} of {size} bytes")
    return done


def _write_error(path: Path, exc: OSError) -> DestinationError:
    if exc.errno == errno.ENOSPC:
        return DestinationError(f"The destination drive is full while writing {path}.",
                                "Free space there or choose a bigger drive, then run the "
                                "extraction again.")
    return DestinationError(f"Cannot write {path}: {exc.strerror or exc}.",
                            "Check that the target drive is mounted read-write and still "
                            "plugged in, then run the extraction again.")
