"""MBR: a shrinking restore moves the Recovery partition, so the BCD's device elements that
name it by offset (WinRE's ramdisk) and ReAgent.xml must follow; read back with regipy.

The BCD is the shared fixture (a real store, GPT devices) turned into an MBR disk's: every
partition device rewritten to (disk signature, byte offset) of the test disk's partitions.
"""

from __future__ import annotations

import lzma
import struct
from pathlib import Path

import pytest
from regipy.registry import RegistryHive

from recovery.demo.disk import FIXTURES, DemoDisk, DiskSpec, build_windows_disk
from recovery.engine import bootconfig
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.restore import RestoreRequest, plan_restore, restore
from recovery.engine.table import read_table
from recovery.engine.verify import verify
from recovery.sys import hivexbind, ntfs3g
from recovery.sys.blockdev import BlockDevice
from recovery.units import MiB
from tests.engine.helpers import place_files_high

SPEC = DiskSpec(scheme="mbr", size=1200 * MiB, windows_size=640 * MiB, data_bytes=40 * MiB,
                seed=5)
WINDOWS_GUID = "382c0f8eeae4ba47b7fc9d8c74dccf0b"  # the fixture's partitions, as stored
RECOVERY_GUID = "69cddf6c75de90448f995a84bf264917"
REAGENT = ('<?xml version=\'1.0\' encoding=\'utf-8\' standalone=\'yes\'?>\r\n<WindowsRE '
           'version="2.0">\r\n<WinreBCD id="{{733b62e6-f608-11eb-825c-c112f60133ab}}"/>\r\n'
           '<WinreLocation path="\\Recovery\\WindowsRE" id="{sig}" offset="{offset}" '
           'guid="{{00000000-0000-0000-0000-000000000000}}"/>\r\n</WindowsRE>\r\n')


def _to_mbr(data: bytes, signature: int, offsets: dict[str, int], default: int) -> bytes:
    out = bytearray(data)
    for pos in range(0, len(data) - 0x38, 4):
        if struct.unpack_from("<II", data, pos + 4 * 0)[0] == 6 and \
                struct.unpack_from("<I", data, pos + 8)[0] == 0x48:
            guid = data[pos + 0x10: pos + 0x20].hex()
            out[pos + 0x10: pos + 0x38] = struct.pack(
                "<QQIII", offsets.get(guid, default), 0, 1, 0, signature) + bytes(12)
    return bytes(out)


def _install_boot_files(disk: DemoDisk, work: Path) -> None:
    parts = {p.number: p for p in disk.table.partitions}
    signature = int(disk.table.disk_id, 16)
    offsets = {WINDOWS_GUID: parts[2].start, RECOVERY_GUID: parts[3].start}
    bcd = work / "BCD"
    bcd.write_bytes(lzma.decompress((FIXTURES / "hives" / "BCD.xz").read_bytes()))
    assert hivexbind.rewrite_bcd_elements(
        bcd, lambda kind, data: _to_mbr(data, signature, offsets, parts[1].start)
        if bootconfig.is_device_element(kind) else None) > 5
    with ntfs3g.mount(disk.path, parts[1].start, work / "m1", True, size=parts[1].size) as m:
        (m / "Boot").mkdir()
        (m / "Boot" / "BCD").write_bytes(bcd.read_bytes())
    xml = REAGENT.format(sig=signature, offset=parts[3].start).encode()
    with ntfs3g.mount(disk.path, parts[3].start, work / "m3", True, size=parts[3].size) as m:
        (m / "Recovery" / "WindowsRE" / "ReAgent.xml").write_bytes(xml)


def _device_offsets(hive: Path, signature: int) -> dict[str, list[int]]:
    """Object/element -> MBR partition offsets its device names, read with regipy."""
    found: dict[str, list[int]] = {}
    registry = RegistryHive(str(hive))  # type: ignore[no-untyped-call]
    objects = registry.get_key("\\Objects")  # type: ignore[no-untyped-call]
    for obj in objects.iter_subkeys():
        elements = next((k for k in obj.iter_subkeys() if k.name == "Elements"), None)
        for element in elements.iter_subkeys() if elements else []:
            if not bootconfig.is_device_element(int(element.name, 16)):
                continue
            data = bytes.fromhex(next(v.value for v in element.iter_values()
                                      if v.name == "Element"))
            found[f"{obj.name}/{element.name}"] = [
                struct.unpack_from("<Q", data, pos + 0x10)[0]
                for pos in range(0, len(data) - 0x2C, 4)
                if struct.unpack_from("<I", data, pos)[0] == 6
                and struct.unpack_from("<I", data, pos + 0x28)[0] == signature]
    return found


@pytest.fixture(scope="module")
def mbr_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoDisk, Path]:
    work = tmp_path_factory.mktemp("mbr-resize")
    disk = build_windows_disk(work / "mbr.img", SPEC)
    _install_boot_files(disk, work)
    place_files_high(disk, work / "mnt")
    store = work / "store"
    capture(CaptureRequest(disk.path, store, name="pc"))
    return disk, store


def test_shrinking_an_mbr_disk_updates_bcd_and_reagent(mbr_source: tuple[DemoDisk, Path],
                                                       tmp_path: Path) -> None:
    disk, store = mbr_source
    parts = {p.number: p for p in disk.table.partitions}
    signature = int(disk.table.disk_id, 16)
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(parts[2].start + 480 * MiB + parts[3].size + MiB)
    plan = plan_restore(RestoreRequest(store, "pc", target, confirmed=True))
    assert plan.bcd_update().startswith("updated")
    assert restore(RestoreRequest(store, "pc", target, confirmed=True)).verified
    with BlockDevice.open(target) as device:
        new = {p.number: p for p in read_table(device).partitions}
    assert new[3].start != parts[3].start and new[1] == parts[1]
    with ntfs3g.mount(disk.path, parts[1].start, tmp_path / "a", False,
                      size=parts[1].size) as root:
        before = _device_offsets(root / "Boot" / "BCD", signature)
    with ntfs3g.mount(target, new[1].start, tmp_path / "b", False, size=new[1].size) as root:
        after = _device_offsets(root / "Boot" / "BCD", signature)
    moved = {k for k, v in before.items() if parts[3].start in v}
    assert len(moved) >= 3  # WinRE's device, osdevice and ramdisk options
    for key, offsets in before.items():
        expected = [new[3].start if o == parts[3].start else o for o in offsets]
        assert after[key] == expected, key
    with ntfs3g.mount(target, new[3].start, tmp_path / "c", False, size=new[3].size) as root:
        xml = (root / "Recovery" / "WindowsRE" / "ReAgent.xml").read_text()
    assert f'offset="{new[3].start}"' in xml
    assert ntfs3g.ntfsfix_check(target, new[2].start, new[2].size).ok
    summary = verify(store, "pc", target)
    assert summary.ok, summary.problems
    assert summary.methods[2].startswith("file tree")
    assert summary.methods[1].startswith("file tree")  # its BCD was rewritten
