"""The mount table parser: what the kernel writes, escapes and all."""

from __future__ import annotations

from pathlib import Path

from recovery.sys.mounts import (
    Mount,
    block_backed,
    mount_containing,
    parse_mountinfo,
    read_mounts,
    read_swaps,
)

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
48 27 259:3 / /mnt/my\\040windows rw,relatime shared:5 master:1 - fuseblk /dev/nvme0n1p3 rw
49 48 8:17 /images /mnt/my\\040windows/store rw - ext4 /dev/sdb1 rw
50 27 0:45 / /tmp/usb rw - fuse /dev/sdc1 rw
garbage line
"""


def test_fields_optional_tags_and_escaped_spaces() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 5
    windows = mounts[2]
    assert windows == Mount(mount_id=48, parent_id=27, major=259, minor=3, root="/",
                            mountpoint="/mnt/my windows", fs_type="fuseblk",
                            source="/dev/nvme0n1p3")
    assert mounts[3].root == "/images" and mounts[3].devnum == (8, 17)


def test_block_backed_drops_virtual_file_systems() -> None:
    kept = block_backed(parse_mountinfo(MOUNTINFO))
    assert [m.mountpoint for m in kept] == [
        "/", "/mnt/my windows", "/mnt/my windows/store", "/tmp/usb"]


def test_deepest_mount_holds_a_path() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    def holder(path: str) -> str | None:
        found = mount_containing(Path(path), mounts, resolve=False)
        return found.source if found else None
    assert holder("/mnt/my windows/store/img/manifest.yaml") == "/dev/sdb1"
    assert holder("/mnt/my windows/Users") == "/dev/nvme0n1p3"
    assert holder("/mnt/my windowsX") == "/dev/vda"  # a prefix of the name is not a parent
    assert holder("/proc/self") == "proc"


def test_this_machines_root_is_mounted() -> None:
    root = mount_containing(Path("/"), read_mounts())
    assert root is not None and root.mountpoint == "/"


def test_swaps(tmp_path: Path) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
                     "/dev/zram0                              partition\t8388604\t\t0\t\t100\n"
                     "/swap\\040file                           file\t\t1048572\t\t0\t\t-2\n")
    assert read_swaps(swaps) == ["/dev/zram0", "/swap file"]
    assert read_swaps(tmp_path / "missing") == []
