"""Partition enumeration through libparted (pyparted), strictly read-only.

libparted opens devices read-write when it can and may offer to "fix" a GPT; we never
commit, answer every question with Ignore/No/Cancel, and read image files through a
read-only loop device so that the source cannot be written even by accident. libparted
also cannot be told the sector size of an image file, which the loop device supplies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import parted

from recovery.model.layout import MbrKind
from recovery.sys import losetup

log = logging.getLogger(__name__)

# libparted's PedExceptionOption bits (stable ABI): the answers we may give to a question.
_RESOLVE_IGNORE, _RESOLVE_OK, _RESOLVE_NO, _RESOLVE_CANCEL, _UNHANDLED = 32, 8, 4, 64, 0

_KIND_OF = {parted.PARTITION_NORMAL: "primary", parted.PARTITION_LOGICAL: "logical",
            parted.PARTITION_EXTENDED: "extended"}


@dataclass(frozen=True)
class PartedPartition:
    number: int
    kind: MbrKind
    start_sector: int
    sectors: int
    bootable: bool  # MBR active flag; on GPT libparted reports the ESP as "boot"
    name: str  # GPT name ("" on MBR)


@dataclass(frozen=True)
class PartedDisk:
    label: str  # libparted's name: "gpt", "msdos", "loop" (a bare file system), ...
    sector_size: int
    sectors: int
    model: str
    partitions: tuple[PartedPartition, ...]


def read_disk(path: Path, *, image_file: bool, sector_size: int) -> PartedDisk:
    """The partitions libparted sees on `path`; label "" when it recognises no disk label.

    `image_file`: `path` is a regular file, read through a read-only loop device with
    `sector_size`-byte sectors.
    """
    with _read_only_node(path, image_file, sector_size) as node, _never_fix():
        device = parted.getDevice(str(node))
        try:
            return _describe(device)
        finally:
            # libparted caches devices by path; loop nodes are reused for other files.
            device.removeFromCache()


def _describe(device: parted.Device) -> PartedDisk:
    model = device.model or ""
    try:
        disk = parted.newDisk(device)
    except (parted.DiskException, parted.IOException, parted.DiskLabelException) as exc:
        log.debug("libparted: no disk label on %s: %s", device.path, exc)
        return PartedDisk("", device.sectorSize, device.length, model, ())
    partitions = []
    for partition in disk.partitions:
        kind = _KIND_OF.get(partition.type & 0x3)
        if kind is None:
            continue
        partitions.append(PartedPartition(
            number=partition.number, kind=kind,  # type: ignore[arg-type]
            start_sector=partition.geometry.start, sectors=partition.geometry.length,
            bootable=_flag(partition, parted.PARTITION_BOOT),
            name=(partition.name or "") if disk.type == "gpt" else ""))
    return PartedDisk(label=disk.type, sector_size=device.sectorSize, sectors=device.length,
                      model=model, partitions=tuple(partitions))


def _flag(partition: parted.Partition, flag: int) -> bool:
    return bool(partition.isFlagAvailable(flag) and partition.getFlag(flag))


@contextmanager
def _read_only_node(path: Path, image_file: bool, sector_size: int) -> Iterator[Path]:
    if not image_file:
        yield path
        return
    with losetup.loop_device(path, sector_size=sector_size, read_only=True) as node:
        yield node


def _answer(exc_type: int, options: int, message: str) -> int:
    """libparted asks questions through this; never choose Fix or Yes (both write)."""
    log.debug("libparted says (type %d, options %d): %s", exc_type, options, message)
    for choice in (_RESOLVE_IGNORE, _RESOLVE_OK, _RESOLVE_NO, _RESOLVE_CANCEL):
        if options & choice:
            return choice
    return _UNHANDLED


@contextmanager
def _never_fix() -> Iterator[None]:
    parted.register_exn_handler(_answer)
    try:
        yield
    finally:
        parted.clear_exn_handler()
