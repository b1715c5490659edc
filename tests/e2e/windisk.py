"""Windows-like disks made on the host for the end-to-end tests, and their fingerprints.

A fingerprint is what must come back after capture, wipe and restore: the partition table
as `sfdisk --dump` prints it (disk GUID or MBR signature, partition GUIDs, types, names,
starts and sizes), the `ntfsclone --save-image` hash of each NTFS volume (deterministic for a
volume: equal hashes mean every used cluster came back) and the files on each FAT volume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recovery.sys import dosfstools, losetup, mtools, ntfs3g, sfdisk
from recovery.sys.run import run
from tests.fsbuild import BuiltVolume, file_set, fill_fat, fill_ntfs

MiB = 1 << 20
SECTOR = 512
DISK_GUID = "5EED0000-1111-4222-8333-444455556666"


@dataclass(frozen=True)
class Volume:
    number: int
    kind: str  # "fat" | "ntfs" | "raw"
    start: int  # bytes
    size: int


@dataclass(frozen=True)
class WindowsDisk:
    image: Path
    volumes: tuple[Volume, ...]


def _blank(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size)


def _fill(image: Path, volumes: tuple[Volume, ...], scratch: Path) -> None:
    for volume in volumes:
        built = BuiltVolume(image, volume.start, volume.size)
        if volume.kind == "fat":
            dosfstools.mkfs_fat(image, volume.start, volume.size, fat_bits=32,
                                sectors_per_cluster=1, label="SYSTEM")
            fill_fat(built, scratch / f"fat{volume.number}",
                     {f"EFI/Microsoft/Boot/{n.replace('/', '_')}": d
                      for n, d in file_set(volume.number, 6, 256 * 1024).items()})
        elif volume.kind == "ntfs":
            ntfs3g.mkntfs(image, volume.start, volume.size, label=f"Vol{volume.number}")
            fill_ntfs(built, scratch / f"mnt{volume.number}",
                      file_set(volume.number, 16, 2 * MiB), delete=["dir1/file001.bin"])


def make_gpt_disk(image: Path, size: int, scratch: Path) -> WindowsDisk:
    """ESP (FAT32), MSR, Windows (NTFS), recovery tools (NTFS), as Windows setup lays out."""
    _blank(image, size)
    volumes = (Volume(1, "fat", 1 * MiB, 100 * MiB), Volume(2, "raw", 101 * MiB, 16 * MiB),
               Volume(3, "ntfs", 117 * MiB, size - 117 * MiB - 300 * MiB),
               Volume(4, "ntfs", size - 299 * MiB, 298 * MiB))
    types = {1: "EF00", 2: "0C01", 3: "0700", 4: "2700"}
    names = {1: "EFI system partition", 2: "Microsoft reserved partition",
             3: "Basic data partition", 4: "Windows RE tools"}
    argv = ["sgdisk", f"--disk-guid={DISK_GUID}"]
    for v in volumes:
        first = v.start // SECTOR
        argv += [f"--new={v.number}:{first}:{first + v.size // SECTOR - 1}",
                 f"--typecode={v.number}:{types[v.number]}",
                 f"--change-name={v.number}:{names[v.number]}",
                 f"--partition-guid={v.number}:5EED0000-0000-4000-8000-00000000000{v.number}"]
    run([*argv, str(image)])
    _fill(image, volumes, scratch)
    return WindowsDisk(image, volumes)


def make_mbr_disk(image: Path, size: int, scratch: Path) -> WindowsDisk:
    """'System Reserved' (active NTFS) and the Windows volume, as on a BIOS PC."""
    _blank(image, size)
    volumes = (Volume(1, "ntfs", 1 * MiB, 100 * MiB),
               Volume(2, "ntfs", 101 * MiB, size - 102 * MiB))
    script = "label: dos\nlabel-id: 0x5eed1234\n" + "".join(
        f"{v.start // SECTOR} {v.size // SECTOR} 7{' *' if v.number == 1 else ''}\n"
        for v in volumes)
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(image)],
        input_bytes=script.encode())
    _fill(image, volumes, scratch)
    return WindowsDisk(image, volumes)


def fingerprint(disk: WindowsDisk) -> dict[str, object]:
    result: dict[str, object] = {"table": sfdisk.dump(disk.image)}
    for volume in disk.volumes:
        if volume.kind == "ntfs":
            result[f"ntfs{volume.number}"] = ntfs3g.ntfsclone_image_hash(
                disk.image, volume.start, volume.size)
        elif volume.kind == "fat":
            result[f"fat{volume.number}"] = {
                name: mtools.mtype(disk.image, volume.start, "/EFI/Microsoft/Boot/" + name)
                for name in sorted(mtools.mdir(disk.image, volume.start,
                                               "/EFI/Microsoft/Boot"))}
    return result


def make_store_disk(image: Path, size: int, label: str) -> None:
    """A USB stick with one ext4 partition: the image store the guest writes to."""
    _blank(image, size)
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(image)],
        input_bytes=b"label: dos\n2048 - 83\n")
    with losetup.loop_device(image, offset=MiB, size=size - MiB, read_only=False) as device:
        run(["mkfs.ext4", "-q", "-L", label, str(device)])


def store_with_image(image: Path, size: int, label: str, source: Path, mountpoint: Path,
                     name: str = "pc") -> None:
    """A store stick (make_store_disk) holding a store at /images with one image of the
    disk image `source`, captured on the host (no boot)."""
    from recovery.engine.capture import CaptureRequest, capture

    make_store_disk(image, size, label)
    with mounted_store_disk(image, mountpoint, read_write=True) as root:
        capture(CaptureRequest(source, root / "images", name=name))


@contextmanager
def mounted_store_disk(image: Path, mountpoint: Path, *, read_write: bool = False
                       ) -> Iterator[Path]:
    """The store stick's file system on the host (read-only unless a test damages it)."""
    from recovery.sys.mount import mounted

    size = image.stat().st_size
    with losetup.loop_device(image, offset=MiB, size=size - MiB,
                             read_only=not read_write) as device, \
            mounted(device, "ext4", mountpoint, read_write=read_write) as point:
        yield point


def sparse_copy(source: Path, copy: Path) -> None:
    """A copy of a disk image that keeps its holes: a 4 GiB store stick costs what it holds
    (shutil.copyfile would write every zero)."""
    run(["cp", "--sparse=always", "--reflink=auto", str(source), str(copy)])
