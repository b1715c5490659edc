"""Loop devices (util-linux losetup/partx): make disk-image files look like real disks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recovery.sys.run import run, run_text


def attach(image: Path, *, sector_size: int = 512, read_only: bool = False,
           offset: int = 0, size: int = 0) -> Path:
    argv = ["losetup", "--find", "--show", "--sector-size", str(sector_size)]
    if read_only:
        argv.append("--read-only")
    if offset:
        argv += ["--offset", str(offset)]
    if size:
        argv += ["--sizelimit", str(size)]
    return Path(run_text([*argv, str(image)]).strip())


def detach(device: Path) -> None:
    # Partitions added with partx outlive the loop device and confuse its next user.
    run(["partx", "-d", str(device)], check=False)
    run(["losetup", "--detach", str(device)], check=False)


@contextmanager
def loop_device(image: Path, *, sector_size: int = 512, read_only: bool = False,
                offset: int = 0, size: int = 0) -> Iterator[Path]:
    device = attach(image, sector_size=sector_size, read_only=read_only, offset=offset,
                    size=size)
    try:
        yield device
    finally:
        detach(device)


def backing_file(device: Path) -> Path | None:
    """The file behind /dev/loopN, or None when it backs nothing."""
    name = device.name
    try:
        text = Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def add_partitions(device: Path) -> None:
    """Create loopNpM nodes (this kernel has no partition parsers for loop devices)."""
    run(["partx", "-a", str(device)], check=False)
