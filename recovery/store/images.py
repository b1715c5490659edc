"""Image lifecycle in a store: begin a capture, commit it atomically, list, load and check.

A capture writes into images/NAME.partial/; `commit` writes index.bin, then manifest.yaml,
then renames the folder to images/NAME. Only that rename makes the image exist, so a
capture killed at any moment leaves at most an incomplete image, which the next run of the
same capture resumes (its chunks are already in the store and are not written again).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import blake3
import yaml

from recovery.errors import (
    Hint,
    ImageDamagedError,
    ImageIncompleteError,
    ImageNotFoundError,
    RecoveryError,
    StoreError,
    UsageError,
)
from recovery.model.manifest import ImageManifest, SourceIdentity, utc_timestamp
from recovery.store import files
from recovery.store import manifest as manifest_codec
from recovery.store import verified as verified_record
from recovery.store.access import StoreAccess
from recovery.store.index import ImageIndex, IndexFormatError, decode, encode

PARTIAL = ".partial"
MANIFEST_FILE = "manifest.yaml"
INDEX_FILE = "index.bin"
CAPTURE_STATE = "capture.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
ImageState = Literal["complete", "incomplete", "damaged"]


@dataclass(frozen=True)
class ImageInfo:
    """One entry of `recovery images`: a complete, incomplete or damaged image."""

    name: str
    state: ImageState
    created: str  # the manifest's time, or when an incomplete capture started
    manifest: ImageManifest | None = None  # set for complete images
    problem: str = ""  # why a damaged image cannot be used
    capture_source: str = ""  # incomplete images: the source disk's stable id
    verified: verified_record.Verification | None = None  # the last full check, if any

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    @property
    def source_id(self) -> str:
        """The source disk's stable id ("" when damaged): has this PC been captured?"""
        return self.manifest.source.stable_id if self.manifest else self.capture_source

    @property
    def computer(self) -> str:
        """The Windows computer name the image was taken from ("" when unknown)."""
        return self.manifest.computer if self.manifest else ""

    def matches_computer(self, pattern: str) -> bool:
        """`pattern` is a computer name, case-insensitive, '*' and '?' allowed."""
        return bool(self.computer) and fnmatch.fnmatchcase(self.computer.casefold(),
                                                           pattern.casefold())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "state": self.state,
                               "complete": self.complete, "created": self.created,
                               "computer": self.computer}
        if self.problem:
            out["problem"] = self.problem
        if self.source_id:
            out["source_id"] = self.source_id
        if self.manifest is not None:
            plain = manifest_codec.to_plain(self.manifest)
            for key in ("source", "chunk_size", "host", "tool_version", "partitions",
                        "stats", "table_copy", "disk_unreadable"):
                out[key] = plain[key]
            out["unreadable_bytes"] = self.manifest.unreadable_bytes
            out["disk_size"] = self.manifest.table.disk_size
            out["scheme"] = self.manifest.table.scheme
            out["verified"] = self.verified.to_dict() if self.verified else None
        return out


@dataclass
class ImageWriter:
    """A capture in progress: chunks go to the store, then `commit` makes the image exist."""

    store: StoreAccess
    name: str
    path: Path  # images/NAME.partial
    started: str
    resumed: bool  # an interrupted capture of the same name was found and is continued
    finished: bool = False

    def commit(self, manifest: ImageManifest, index: ImageIndex) -> ImageManifest:
        """Write index and manifest, then publish the image; returns the sealed manifest.

        Fills in name, chunk counts and the index fields; refuses when a chunk the index
        needs is not in the store (an image must never point to a missing chunk).
        """
        if self.finished:
            raise RuntimeError(f"image writer for {self.name} is already finished")
        self.store.check_lock()
        final = self.store.images_dir / self.name
        if final.exists():
            raise _exists_error(self.name, self.store.root)
        manifest = _complete_manifest(self.name, manifest, index)
        _store_zero_areas(self.store, manifest)
        _check_chunks_present(self.store, manifest, index)
        self.store.sync()
        blob = encode(index)
        self.store.ensure_space(len(blob))
        files.write_atomic(self.path / INDEX_FILE, blob, self.store.root)
        manifest = manifest_codec.seal(dataclasses.replace(
            manifest, index_file=INDEX_FILE, index_size=len(blob),
            index_blake3=blake3.blake3(blob).hexdigest()))
        files.write_atomic(self.path / MANIFEST_FILE, manifest_codec.dump(manifest),
                           self.store.root)
        files.fsync_dir(self.path)
        try:
            os.rename(self.path, final)
        except OSError as exc:
            raise files.write_error(final, self.store.root, exc) from exc
        files.fsync_dir(self.store.images_dir)
        self.finished = True
        return manifest

    def abort(self) -> None:
        """Stop writing; the image stays listed as incomplete and can be resumed."""
        self.store.sync()
        self.finished = True

    def discard(self) -> None:
        """Remove the incomplete image (its chunks stay: other images may share them)."""
        files.remove_tree(self.path)
        self.finished = True


def begin(store: StoreAccess, name: str, source_id: str = "") -> ImageWriter:
    check_name(name)
    if (store.images_dir / name).exists():
        raise _exists_error(name, store.root)
    path = store.images_dir / f"{name}{PARTIAL}"
    resumed = path.is_dir()
    started = _capture_state(path).get("started", "") if resumed else ""
    if not started:
        started = utc_timestamp()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise files.write_error(path, store.root, exc) from exc
        state = yaml.safe_dump({"name": name, "started": started, "source": source_id},
                               sort_keys=False)
        files.write_atomic(path / CAPTURE_STATE, state.encode(), store.root)
        files.fsync_dir(path)
        files.fsync_dir(store.images_dir)
    return ImageWriter(store, name, path, started, resumed)


def check_name(name: str) -> None:
    if not _NAME.match(name) or name.endswith(PARTIAL):
        raise UsageError(f"'{name}' cannot be used as an image name.",
                         "Use up to 128 letters, digits, '.', '_', '+' or '-', starting with "
                         "a letter or digit, e.g. office-pc-2026-11.")


def default_image_name(source: SourceIdentity, when: datetime,
                       taken: Collection[str] = ()) -> str:
    """'WDC-WD2500-20261125-1530': the disk model and the local time of the capture;
    '-2', '-3', ... appended when `taken` (names already in the store) has it."""
    model = re.sub(r"[^A-Za-z0-9]+", "-", source.model).strip("-")
    if len(model) > 32:
        model = model[:32].rsplit("-", 1)[0]
    base = f"{model or 'disk'}-{when.strftime('%Y%m%d-%H%M')}"
    name, serial = base, 1
    while name in taken:
        serial += 1
        name = f"{base}-{serial}"
    return name


def resumable(images_dir: Path, source_id: str, busy: Collection[str] = ()) -> str | None:
    """The newest interrupted capture of the disk `source_id`, to continue it; `busy`:
    captures running jobs are writing right now."""
    candidates = [info for info in list_all(images_dir)
                  if info.state == "incomplete" and source_id and info.source_id == source_id
                  and info.name not in busy]
    return max(candidates, key=lambda info: info.created).name if candidates else None


# --- reading -------------------------------------------------------------------------------
def load(images_dir: Path, name: str) -> tuple[ImageManifest, ImageIndex]:
    """The verified manifest and index of a complete image."""
    folder = _complete_folder(images_dir, name)
    manifest = manifest_codec.load(_read(folder / MANIFEST_FILE, name), name)
    blob = _read(folder / _index_name(manifest, name), name)
    if len(blob) != manifest.index_size:
        raise _index_damaged(name, f"it has {len(blob)} bytes, the manifest says "
                                   f"{manifest.index_size} (truncated?)")
    if blake3.blake3(blob).hexdigest() != manifest.index_blake3:
        raise _index_damaged(name, "its hash does not match the manifest")
    try:
        index = decode(blob)
    except IndexFormatError as exc:
        raise _index_damaged(name, str(exc)) from exc
    _check_index_matches(manifest, index, name)
    return manifest, index


def list_all(images_dir: Path) -> list[ImageInfo]:
    """Every image folder, sorted by name; damage is reported per image, never raised."""
    if not images_dir.is_dir():
        return []
    found: list[ImageInfo] = []
    for entry in sorted(images_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if entry.name.endswith(PARTIAL):
            state = _capture_state(entry)
            found.append(ImageInfo(entry.name.removesuffix(PARTIAL), "incomplete",
                                   state.get("started") or _mtime_timestamp(entry),
                                   capture_source=state.get("source", "")))
        else:
            found.append(_describe(entry))
    return found


def _describe(folder: Path) -> ImageInfo:
    name = folder.name
    try:
        manifest = manifest_codec.load(_read(folder / MANIFEST_FILE, name), name)
        index_path = folder / _index_name(manifest, name)
        size = index_path.stat().st_size if index_path.is_file() else -1
        if size != manifest.index_size:
            raise _index_damaged(name, "it is missing" if size < 0 else
                                 f"it has {size} bytes, the manifest says "
                                 f"{manifest.index_size}")
    except RecoveryError as exc:
        return ImageInfo(name, "damaged", _mtime_timestamp(folder), problem=exc.title)
    return ImageInfo(name, "complete", manifest.created, manifest,
                     verified=verified_record.read(folder))


def image_names(images_dir: Path) -> list[str]:
    return [info.name for info in list_all(images_dir) if info.complete]


def _complete_folder(images_dir: Path, name: str) -> Path:
    folder = images_dir / name
    if name and "/" not in name and folder.is_dir() and not name.endswith(PARTIAL):
        return folder
    if (images_dir / f"{name}{PARTIAL}").is_dir():
        raise ImageIncompleteError(
            f"The capture of image {name} was interrupted; it is not a usable image.",
            "A capture of the same disk into this store resumes it.",
            hint=Hint.RESUME_CAPTURE)
    names = image_names(images_dir)
    available = ", ".join(names) if names else "none"
    raise ImageNotFoundError(f"There is no image named {name} in {images_dir.parent}.",
                             f"Images in this store: {available}.", hint=Hint.LIST_IMAGES)


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageDamagedError(f"Image {name} is damaged: {path.name} is missing.",
                                "Capture the disk again, or restore the image folder from a "
                                "copy of the store.") from exc
    except OSError as exc:
        raise StoreError(f"Cannot read {path}: {exc.strerror}.",
                         "The store drive may be failing or unplugged; check it.") from exc


def _index_name(manifest: ImageManifest, name: str) -> str:
    if not manifest.index_file or "/" in manifest.index_file or manifest.index_file[0] == ".":
        raise _index_damaged(name, f"the manifest names it {manifest.index_file!r}")
    return manifest.index_file


def _index_damaged(name: str, why: str) -> ImageDamagedError:
    return ImageDamagedError(f"The chunk index of image {name} is damaged: {why}.",
                             "Capture the disk again, or restore the image folder from a "
                             "copy of the store.")


def _check_index_matches(manifest: ImageManifest, index: ImageIndex, name: str) -> None:
    for part in manifest.captured_partitions:
        entry = index.partition(part.number)
        if entry is None:
            raise _index_damaged(name, f"partition {part.number} has no chunk list")
        if len(entry.chunks) != part.chunk_count:
            raise _index_damaged(name, f"partition {part.number} lists {len(entry.chunks)} "
                                       f"chunks, the manifest says {part.chunk_count}")


def _complete_manifest(name: str, manifest: ImageManifest, index: ImageIndex) -> ImageManifest:
    partitions = []
    for part in manifest.partitions:
        if part.captured:
            entry = index.partition(part.number)
            if entry is None:
                raise ValueError(f"captured partition {part.number} is missing from the index")
            part = dataclasses.replace(part, chunk_count=len(entry.chunks))
        partitions.append(part)
    return dataclasses.replace(manifest, name=name, partitions=tuple(partitions))


def _check_chunks_present(store: StoreAccess, manifest: ImageManifest, index: ImageIndex
                          ) -> None:
    needed = index.stored_digests() | stored_area_digests(manifest)
    for digest in needed:
        if not store.has(digest):
            raise ImageDamagedError(
                f"Image {manifest.name} cannot be completed: chunk {digest.hex()} is not in "
                f"the store {store.root}.",
                "A capture of the same disk into this store stores the missing chunks.",
                hint=Hint.RESUME_CAPTURE)


def stored_area_digests(manifest: ImageManifest) -> set[bytes]:
    return {bytes.fromhex(area.digest) for area in manifest.raw_areas}


def _store_zero_areas(store: StoreAccess, manifest: ImageManifest) -> None:
    """Boot areas are stored even when all zero (GPT disks made on Linux have no boot code):
    a few bytes each, and every digest a manifest names can then be read back."""
    for area in manifest.raw_areas:
        digest = bytes.fromhex(area.digest)
        if not store.has(digest) and digest == blake3.blake3(bytes(area.size)).digest():
            store.put(digest, store.compress(bytes(area.size)))


def _exists_error(name: str, root: Path) -> StoreError:
    return StoreError(f"An image named {name} already exists in {root}.",
                      "Choose another name, or give none to get a new one from the disk model "
                      "and the time.", hint=Hint.IMAGE_NAME)


def _capture_state(folder: Path) -> dict[str, str]:
    """capture.yaml of an incomplete image (started, source); {} when unreadable."""
    try:
        document = yaml.safe_load((folder / CAPTURE_STATE).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    if not isinstance(document, dict):
        return {}
    return {str(key): value for key, value in document.items() if isinstance(value, str)}


def _mtime_timestamp(folder: Path) -> str:
    return utc_timestamp(datetime.fromtimestamp(folder.stat().st_mtime).astimezone())
