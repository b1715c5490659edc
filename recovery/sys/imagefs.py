"""`recovery mount`: a captured partition as a read-only file system, through FUSE.

A small FUSE daemon (mfusepy, its own process so that it outlives the command and never
shares a GIL with the file system mounted on top of it) serves one file, partition.img:
the partition assembled from the image's chunks (recovery.store.imageview), every chunk
checked against its BLAKE3, a damaged one failing the read with EIO rather than returning
wrong data. On that file, ntfs-3g -o ro (it opens image files directly, no loop device
needed) or the kernel's FAT driver through a read-only loop device presents the files.

What is mounted is remembered in /run/recovery/image-mounts/<id>/state.json so that
`recovery unmount MOUNTPOINT` can take down both layers and stop the daemon.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recovery.errors import Hint, RecoveryError, ToolError, UsageError
from recovery.store.imageview import ImageView, open_view
from recovery.store.objects import ChunkStore
from recovery.sys import mount as kernel_mount
from recovery.sys import ntfs3g
from recovery.sys.run import run

STATE_DIR = Path("/run/recovery/image-mounts")
FILE = "partition.img"
_START_SECONDS = 30.0


@dataclass(frozen=True)
class MountedImage:
    mountpoint: str
    store: str
    image: str
    partition: int
    fs_type: str
    fuse_dir: str
    pid: int

    @property
    def where(self) -> str:
        return f"partition {self.partition} of image {self.image}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --- the daemon ----------------------------------------------------------------------------
class PartitionFile:
    """mfusepy operations: "/" holds partition.img, read-only."""

    use_ns = True

    def __init__(self, view: ImageView) -> None:
        self.view = view
        self.now = time.time_ns()

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        base = {"st_uid": 0, "st_gid": 0, "st_atime": self.now, "st_mtime": self.now,
                "st_ctime": self.now}
        if path == "/":
            return {**base, "st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2}
        if path == "/" + FILE:
            return {**base, "st_mode": stat.S_IFREG | 0o444, "st_nlink": 1,
                    "st_size": self.view.size}
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", FILE]

    def open(self, path: str, flags: int) -> int:
        if path != "/" + FILE:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        try:
            return self.view.read_at(offset, size)
        except OSError as exc:
            print(f"read of bytes {offset}-{offset + size - 1} failed: {exc}", file=sys.stderr,
                  flush=True)
            raise OSError(errno.EIO, os.strerror(errno.EIO)) from exc


def serve(store: Path, name: str, partition: int, fuse_dir: Path) -> int:
    import mfusepy  # type: ignore[import-untyped]  # ships no type hints

    view = open_view(ChunkStore.open(store), name, partition)
    # allow_other: ntfs-3g and the loop driver open the file as other users' helpers might.
    mfusepy.FUSE(PartitionFile(view), str(fuse_dir), foreground=True, ro=True,
                 allow_other=True, fsname=f"recovery-image:{name}")
    return 0


# --- mount / unmount -----------------------------------------------------------------------
def _state_folder(mountpoint: Path) -> Path:
    key = hashlib.sha256(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    return STATE_DIR / key


def mount_image(store: Path, name: str, partition: int | None, mountpoint: Path
                ) -> MountedImage:
    view = open_view(ChunkStore.open(store), name, partition)
    fs_type = view.part.fs_type
    if fs_type != "ntfs" and not fs_type.startswith("fat"):
        raise UsageError(f"{view.describe()} is {fs_type or 'of an unknown type'}; only NTFS "
                         "and FAT partitions can be mounted.", "Choose another partition.",
                         hint=Hint.CHOOSE_PARTITION)
    _check_mountpoint(mountpoint)
    folder = _state_folder(mountpoint)
    fuse_dir = folder / "fuse"
    fuse_dir.mkdir(parents=True, exist_ok=True)
    process = _start_daemon(store, name, view.part.number, fuse_dir, folder / "daemon.log")
    mounted = MountedImage(os.path.realpath(mountpoint), str(store), name, view.part.number,
                           fs_type, str(fuse_dir), process.pid)
    try:
        kernel_mount.mount_read_only(fuse_dir / FILE, "ntfs" if fs_type == "ntfs" else "vfat",
                                     mountpoint)
    except RecoveryError:
        _stop_daemon(fuse_dir, process.pid)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    (folder / "state.json").write_text(json.dumps(mounted.to_dict()))
    return mounted


def _check_mountpoint(mountpoint: Path) -> None:
    if not mountpoint.is_dir():
        raise UsageError(f"The mount point {mountpoint} is not a folder.",
                         f"Create it first: mkdir -p {mountpoint}")
    if os.path.ismount(mountpoint) or any(mountpoint.iterdir()):
        raise UsageError(f"The mount point {mountpoint} is in use or not empty.",
                         "Give an empty folder, or take down what is mounted there.",
                         hint=Hint.UNMOUNT_IMAGE)


def _start_daemon(store: Path, name: str, partition: int, fuse_dir: Path, log: Path
                  ) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "recovery.sys.imagefs", str(store), name, str(partition),
             str(fuse_dir)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if os.path.ismount(fuse_dir):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    _stop_daemon(fuse_dir, process.pid)
    text = log.read_text(errors="replace").strip()[-600:]
    raise ToolError(f"The image file system for {name} did not start: {text or 'no output'}",
                    "Check that the fuse3 package is installed and /dev/fuse exists.")


def _stop_daemon(fuse_dir: Path, pid: int) -> None:
    if os.path.ismount(fuse_dir):
        run(["umount", str(fuse_dir)], check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (an earlier `recovery mount` started it)
            finished = 0 if _alive(pid) else pid
        if finished:
            return
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def mounted_images() -> list[MountedImage]:
    found = []
    for state in sorted(STATE_DIR.glob("*/state.json")):
        try:
            found.append(MountedImage(**json.loads(state.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return found


def unmount_image(mountpoint: Path) -> MountedImage:
    folder = _state_folder(mountpoint)
    try:
        mounted = MountedImage(**json.loads((folder / "state.json").read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"Nothing was mounted on {mountpoint} by this program.",
                         "Mounted images: " + (", ".join(
                             m.mountpoint for m in mounted_images()) or "none") + ".") from exc
    if os.path.ismount(mounted.mountpoint):
        ntfs3g.unmount(Path(mounted.mountpoint))
    _stop_daemon(Path(mounted.fuse_dir), mounted.pid)
    shutil.rmtree(folder, ignore_errors=True)
    return mounted


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(f"usage: {argv[0]} STORE IMAGE PARTITION FUSE_DIR", file=sys.stderr)
        return 2
    return serve(Path(argv[1]), argv[2], int(argv[3]), Path(argv[4]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
