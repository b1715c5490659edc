"""ntfsresize (ntfs-3g package): how small an NTFS volume can get, checks, and resizing.

`volume` is a device or file whose byte 0 is the boot sector: a loop device over the
partition, or the FUSE view of a partition being shrunk (recovery/engine/imageview.py).
`-f` (force) is passed because a volume restored from an image is often marked dirty or
scheduled for chkdsk by Windows, which ntfsresize otherwise refuses; the checks it then skips
are run separately first (`check`). ntfsresize itself marks a resized volume for chkdsk,
which is what Windows should do at its next boot anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import Hint, ToolError, VolumeStateError
from recovery.sys.run import run

_MIGHT_RESIZE = re.compile(r"You might resize at (\d+) bytes")
_CLUSTER = re.compile(r"Cluster size\s*:\s*(\d+) bytes")
_VOLUME_SIZE = re.compile(r"Current volume size\s*:\s*(\d+) bytes")
_IN_USE = re.compile(r"Space in use\s*:\s*(\d+) MB")


@dataclass(frozen=True)
class ResizeInfo:
    """What `ntfsresize --info` says about a volume."""

    cluster_size: int
    volume_size: int
    needed: int  # the smallest size ntfsresize can shrink the volume to, in bytes
    in_use_mb: int


def info(volume: Path, *, force: bool = True) -> ResizeInfo:
    """`ntfsresize --info`: reads only, never writes the volume."""
    output = _run(["ntfsresize", "--info", *(["-f"] if force else []), str(volume)], volume)
    might = _MIGHT_RESIZE.search(output)
    cluster, size = _CLUSTER.search(output), _VOLUME_SIZE.search(output)
    if cluster is None or size is None:
        raise ToolError(f"Could not read ntfsresize's report on {volume}.",
                        "See the log for its output; the volume may not be NTFS.")
    # No "You might resize" line: nothing can be freed, the volume is as small as it gets.
    needed = int(might.group(1)) if might else int(size.group(1))
    in_use = _IN_USE.search(output)
    return ResizeInfo(int(cluster.group(1)), int(size.group(1)), needed,
                      int(in_use.group(1)) if in_use else 0)


def check(volume: Path) -> str:
    """`ntfsresize --check`: consistency check of the volume; VolumeStateError if it fails."""
    return _run(["ntfsresize", "--check", str(volume)], volume)


def resize(volume: Path, new_size: int, *, dry_run: bool = False) -> str:
    """Shrink or grow the NTFS file system on `volume` to `new_size` bytes.

    Shrinking relocates every cluster past the new end first; growing only needs the
    device (partition) to be `new_size` long already.
    """
    argv = ["ntfsresize", "--force", "--force", "--no-progress-bar", "--size", str(new_size)]
    if dry_run:
        argv.append("--no-action")
    return _run([*argv, str(volume)], volume, stdin=b"y\n")


def _run(argv: list[str], volume: Path, stdin: bytes | None = None) -> str:
    result = run(argv, check=False, input_bytes=stdin, timeout=None)
    output = (result.stdout + result.stderr).decode(errors="replace")
    if result.returncode != 0:
        problem = _last_error(output)
        raise VolumeStateError(
            f"ntfsresize refused or failed on the NTFS volume {volume}: {problem}",
            "Windows must repair this volume first: boot it and run 'chkdsk /f C:', or "
            "restore the exact layout onto a disk at least as large as the original.",
            hint=Hint.LAYOUT_SAME)
    return output


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR") or "rror" in line]
    return (errors or lines or ["no output"])[-1][:300]
