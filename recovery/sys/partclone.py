"""partclone: its count of used blocks, an independent check of our own block maps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from recovery.errors import ToolError
from recovery.sys import losetup
from recovery.sys.run import run

_IN_USE = re.compile(r"Space in use:.*=\s*(\d+) Blocks")
_DEVICE = re.compile(r"Device size:.*=\s*(\d+) Blocks")
_BLOCK_SIZE = re.compile(r"Block size:\s*(\d+) Byte")


@dataclass(frozen=True)
class PartcloneCount:
    block_size: int
    blocks: int
    used_blocks: int

    @property
    def used_bytes(self) -> int:
        return self.used_blocks * self.block_size


def partclone_count(fs: str, source: Path, offset: int = 0, size: int = 0) -> PartcloneCount:
    """Run `partclone.<fs> -c` into /dev/null and read the counts it reports.

    `fs` is the partclone flavour: "ntfs", "fat" (FAT12/16/32), ...
    """
    tool = f"partclone.{fs}"
    with losetup.loop_device(Path(source), offset=offset, size=size,
                             read_only=True) as device:
        result = run([tool, "--clone", "--quiet", "--logfile", "/dev/null", "--source",
                      str(device), "--overwrite", "/dev/null"])
    text = (result.stdout + result.stderr).decode(errors="replace")
    found = [pattern.search(text) for pattern in (_BLOCK_SIZE, _DEVICE, _IN_USE)]
    if not all(found):
        raise ToolError(f"{tool} did not report its block counts for {source} at offset "
                        f"{offset}.", "See the log for its output.")
    block_size, blocks, used = (int(m.group(1)) for m in found if m)
    return PartcloneCount(block_size, blocks, used)


def partclone_used_bytes(fs: str, source: Path, offset: int = 0, size: int = 0) -> int:
    return partclone_count(fs, source, offset, size).used_bytes
