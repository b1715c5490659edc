"""mtools: files in FAT volumes without mounting (this kernel cannot mount vfat).

A volume is `image@@offset`: mtools reads a disk or disk-image file at that byte offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recovery.sys.run import run, run_text


def _volume(source: Path, offset: int) -> str:
    return f"{source}@@{offset}"


def mcopy(source: Path, offset: int, files: Sequence[Path], destination: str = "/") -> None:
    """Copy local files (directories recursively) into the volume, replacing existing ones."""
    run(["mcopy", "-s", "-o", "-i", _volume(source, offset), *(str(f) for f in files),
         f"::{destination}"])


def mcopy_out(source: Path, offset: int, path: str, target: Path) -> None:
    """Copy a file or directory out of the volume to a local path."""
    run(["mcopy", "-s", "-o", "-n", "-i", _volume(source, offset), f"::{path}", str(target)])


def mtype(source: Path, offset: int, path: str) -> bytes:
    """The bytes of one file in the volume."""
    return run(["mtype", "-i", _volume(source, offset), f"::{path}"]).stdout


def mmd(source: Path, offset: int, path: str) -> None:
    """Create a directory and its missing parents ("/EFI/Microsoft/Boot")."""
    parts = [p for p in path.split("/") if p]
    existing = ""
    for part in parts:
        existing += "/" + part
        if not exists(source, offset, existing):
            run(["mmd", "-i", _volume(source, offset), f"::{existing}"])


def mdel(source: Path, offset: int, path: str) -> None:
    run(["mdel", "-i", _volume(source, offset), f"::{path}"])


def mdir(source: Path, offset: int, path: str = "/") -> list[str]:
    """Names in a directory of the volume (long names where present, without . and ..)."""
    text = run_text(["mdir", "-b", "-i", _volume(source, offset), f"::{path}"])
    prefix = f"::{path.rstrip('/')}/"
    names = [line.strip().removeprefix(prefix).rstrip("/") for line in text.splitlines()]
    return [name for name in names if name and name not in (".", "..")]


def exists(source: Path, offset: int, path: str) -> bool:
    result = run(["mdir", "-b", "-i", _volume(source, offset), f"::{path}"], check=False)
    return result.returncode == 0
