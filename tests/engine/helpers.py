"""Independent views of a disk, from other tools than ours, to judge a round trip."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from recovery.demo.disk import DemoDisk
from recovery.model.layout import PartitionTable
from recovery.sys import dosfstools, losetup, ntfs3g
from recovery.sys.run import run_text
from recovery.units import MiB
from tests.fsbuild import BuiltVolume, fill_ntfs


def sfdisk_dump(path: Path, sector_size: int) -> str:
    """sfdisk's view of the table with what legitimately changes (device names, the GPT's
    last usable LBA on a larger disk) taken out."""
    with losetup.loop_device(path, sector_size=sector_size, read_only=True) as device:
        text = run_text(["sfdisk", "--dump", str(device)])
    text = text.replace(str(device), "DISK")
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(("device:", "last-lba:")))


def volume_fingerprints(path: Path, table: PartitionTable) -> dict[int, str]:
    """ntfsclone's image hash of each NTFS volume; fsck.fat's verdict for FAT volumes."""
    found: dict[int, str] = {}
    for part in table.data_partitions():
        with open(path, "rb") as disk:
            disk.seek(part.start + 3)
            oem = disk.read(8)
            disk.seek(part.start + 82)
            fat32 = disk.read(8)
        if oem == b"NTFS    ":
            found[part.number] = ntfs3g.ntfsclone_image_hash(path, part.start, part.size)
        elif fat32.startswith(b"FAT32"):
            report = dosfstools.fsck_fat(path, part.start, part.size)
            found[part.number] = (f"fat ok={report.ok} files={report.files} "
                                  f"used={report.used_clusters}")
    return found


def ids_only(dump: str) -> str:
    """The identifiers of a dump, for messages."""
    return "\n".join(re.findall(r"(?:label-id|uuid|type|name|attrs)=?[^,\n]*", dump))


def place_files_high(disk: DemoDisk, mountpoint: Path) -> None:
    """Fill Windows to ~85 %, write files, delete the filler: the files land high."""
    volume = BuiltVolume(disk.path, disk.windows.start, disk.windows.size)
    filler = {f"filler/{i}.bin": bytes(32 * MiB)
              for i in range(disk.windows.size * 4 // 5 // (32 * MiB))}
    fill_ntfs(volume, mountpoint, filler)
    high = {f"Users/tech/high{i}.bin": hashlib.sha256(str(i).encode()).digest() * (MiB // 8)
            for i in range(8)}
    fill_ntfs(volume, mountpoint, high, delete=list(filler))
