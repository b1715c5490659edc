"""Which disks this PC has, what is on them, and which of them are in use.

Facts come from udev (through a `UdevSource`, live or recorded) and from the kernel's mount
table. The safety gate relies on three answers given here: is a disk mounted (also through
a loop device set up by hand over the same image file), does it hold the running live
system, and does it hold a given path (the image store).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from recovery.errors import Hint, RecoveryError, SourceError
from recovery.model import gpt
from recovery.model.disk import Disk, DiskPartition
from recovery.sys.blockdev import BlockDevice
from recovery.sys.mounts import Mount, mount_containing, read_mounts, read_swaps
from recovery.sys.udev import LiveUdev, MountSource, UdevSource

Record = dict[str, str]

_EXCLUDED_NAMES = re.compile(r"^(ram|zram|dm-|sr|fd|md)\d")
_UDEV_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_MAX_NESTING = 4  # loop over a file on a loop over a file ... deeper than this is not real


# --- reading one udev record -----------------------------------------------------------------
def _name(record: Record) -> str:
    return record.get("DEVNAME", "").rsplit("/", 1)[-1]


def _int(record: Record, key: str, default: int = 0) -> int:
    try:
        return int(record.get(key, ""))
    except ValueError:
        return default


def _devnum(record: Record) -> tuple[int, int] | None:
    if "MAJOR" not in record or "MINOR" not in record:
        return None
    return _int(record, "MAJOR"), _int(record, "MINOR")


def _udev_decode(text: str) -> str:
    return _UDEV_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _backing_file(record: Record) -> Path | None:
    text = record.get("loop/backing_file", "").removesuffix(" (deleted)").strip()
    return Path(text) if text else None


def _is_listed(record: Record) -> bool:
    """A whole disk a technician could capture or restore (not RAM, optical, mapper, ...)."""
    if record.get("DEVTYPE") != "disk" or _EXCLUDED_NAMES.match(_name(record)):
        return False
    if record.get("ID_CDROM") == "1" or "DM_NAME" in record:
        return False
    if _name(record).startswith("loop") and _backing_file(record) is None:
        return False
    return _int(record, "size") > 0  # an empty card reader has no medium to work on


def _bus(record: Record) -> str:
    name, path = _name(record), record.get("ID_PATH", "")
    subsystems = record.get("ancestor_subsystems", "").split(",")
    bus = record.get("ID_BUS", "")
    if name.startswith("loop"):
        return "loop"
    # NVMe disks have no ID_BUS; their path or their controller's subsystem says it.
    if "-nvme-" in path or name.startswith("nvme") or "nvme" in subsystems:
        return "nvme"
    if bus == "usb" or "-usb-" in path or "usb" in subsystems:
        return "usb"
    if path.startswith("virtio-pci") or name.startswith("vd") or "virtio" in subsystems:
        return "virtio"
    if bus == "ata":
        return "sata" if record.get("ID_ATA_SATA") == "1" or "-ata-" in path else "ata"
    if name.startswith("mmcblk") or "mmc" in subsystems:
        return "mmc"
    if bus == "scsi" or "scsi" in subsystems:
        return "scsi"
    return "unknown"


def _model(record: Record, bus: str) -> str:
    if "ID_MODEL_ENC" in record:
        model = _udev_decode(record["ID_MODEL_ENC"]).strip()
    else:
        model = record.get("ID_MODEL", "").replace("_", " ").strip()
    model = model or record.get("device/model", "").strip()
    vendor = _udev_decode(record.get("ID_VENDOR_ENC", record.get("ID_VENDOR", ""))).strip()
    # USB sticks name the maker only in the vendor string ("SanDisk" + "Cruzer Blade").
    if bus == "usb" and vendor and not model.lower().startswith(vendor.lower()):
        model = f"{vendor} {model}".strip()
    backing = _backing_file(record)
    if bus == "loop" and backing is not None:
        return backing.name
    if not model and bus == "virtio":
        return "Virtio disk"
    return model


def _serial(record: Record) -> str:
    for key in ("ID_SERIAL_SHORT", "ID_SCSI_SERIAL", "serial", "device/serial"):
        if record.get(key, "").strip():
            return record[key].strip()
    # virtio disks have only ID_SERIAL, and it is the serial itself.
    return record.get("ID_SERIAL", "") if _bus(record) == "virtio" else ""


def _stable_id(record: Record) -> str:
    backing = _backing_file(record)
    if _name(record).startswith("loop") and backing is not None:
        offset = _int(record, "loop/offset")
        # A file deleted since (maybe made again under its name) is another disk.
        gone = record.get("loop/backing_file", "").endswith(" (deleted)")
        return f"loop:{backing}" + (f"@{offset}" if offset else "") + (" (deleted)" if gone
                                                                       else "")
    for key in ("ID_SERIAL", "ID_WWN", "ID_PATH", "wwid"):
        if record.get(key, "").strip():
            return record[key].strip()
    return "devpath:" + record.get("DEVPATH", record.get("DEVNAME", ""))


def _mbr_or_guid(value: str) -> str:
    if value.lower().startswith("0x"):
        return f"{int(value, 16):02X}"
    return value.upper()


# --- the machine: records, mounts and how they relate ----------------------------------------
class _Machine:
    def __init__(self, records: list[Record], mounts: list[Mount], swaps: list[str],
                 resolve_paths: bool) -> None:
        self.records = records
        self.mounts = mounts
        self.resolve_paths = resolve_paths
        self.by_node = {r["DEVNAME"]: r for r in records if "DEVNAME" in r}
        self.by_devnum = {n: r for r in records if (n := _devnum(r)) is not None}
        self.mounted_at: dict[object, list[str]] = {}
        for mount in mounts:
            for key in {mount.devnum, self._path_key(mount.source)}:
                self.mounted_at.setdefault(key, []).append(mount.mountpoint)
        for swap in swaps:
            self.mounted_at.setdefault(self._path_key(swap), []).append("[SWAP]")

    def _path_key(self, path: str) -> str:
        return os.path.realpath(path) if self.resolve_paths and path.startswith("/") else path

    def own_mountpoints(self, record: Record, depth: int = 0) -> list[str]:
        found: list[str] = []
        for key in (_devnum(record), self._path_key(record.get("DEVNAME", ""))):
            found += [m for m in self.mounted_at.get(key, []) if m not in found]
        # Mounts through a loop device over this node (ntfs-3g, the TUI's store mounts)
        # are this device's: such loops are not listed as disks of their own.
        if "DEVNAME" in record and depth < _MAX_NESTING:
            for loop in self.loops_over(Path(record["DEVNAME"])):
                found += [m for m in self.own_mountpoints(loop, depth + 1) if m not in found]
        return found

    def partitions_of(self, disk: Record) -> list[Record]:
        node, devnum = disk.get("DEVNAME"), _devnum(disk)
        disk_ref = f"{devnum[0]}:{devnum[1]}" if devnum else None
        return [r for r in self.records if r.get("DEVTYPE") == "partition"
                and (r.get("parent") == node or r.get("ID_PART_ENTRY_DISK") == disk_ref)]

    def disk_record(self, record: Record) -> Record:
        if record.get("DEVTYPE") != "partition":
            return record
        parent = self.by_node.get(record.get("parent", ""))
        if parent is None and (ref := record.get("ID_PART_ENTRY_DISK", "")).count(":") == 1:
            major, minor = ref.split(":")
            parent = self.by_devnum.get((int(major), int(minor)))
        return parent or record

    def loops_over(self, backing: Path) -> list[Record]:
        """Loop devices over the file `backing` now has; one over a file deleted since
        (and maybe re-created under the same name) holds other bytes."""
        return [r for r in self.records if r.get("DEVTYPE") == "disk"
                and _name(r).startswith("loop") and _backing_file(r) == backing
                and not r.get("loop/backing_file", "").endswith(" (deleted)")]

    def record_of_mount(self, mount: Mount) -> Record | None:
        return self.by_devnum.get(mount.devnum) or self.by_node.get(self._path_key(mount.source))

    def holders(self, record: Record, depth: int = 0) -> list[Record]:
        """The disk of a device, then what else holds its data: loops over the same file,
        and the disk that holds that file."""
        disk = self.disk_record(record)
        found = [disk]
        backing = _backing_file(disk)
        if backing is None or depth >= _MAX_NESTING:
            return found
        found += [r for r in self.loops_over(backing) if r is not disk]
        # A loop over a disk or partition node (ntfs-3g mounts go through one) holds that disk.
        device = self.by_node.get(self._path_key(str(backing)))
        if device is not None:
            found += [r for r in self.holders(device, depth + 1) if r not in found]
            return found
        mount = mount_containing(backing, self.mounts, resolve=self.resolve_paths)
        below = self.record_of_mount(mount) if mount else None
        if below is not None:
            found += [r for r in self.holders(below, depth + 1) if r not in found]
        return found

    def is_loop_over_device(self, record: Record) -> bool:
        """A loop device over a disk or partition node: made by this program (ntfs-3g and
        file-system mounts reach a partition by offset through one) and never a disk of
        its own; its mounts count for the disk below (_shared_loop_mountpoints)."""
        backing = _backing_file(record)
        return (_name(record).startswith("loop") and backing is not None
                and self._path_key(str(backing)) in self.by_node)

    def live_medium_disks(self, live_medium: Path) -> list[str]:
        for mount in reversed(self.mounts):
            if mount.mountpoint == str(live_medium):
                record = self.record_of_mount(mount)
                return [r["DEVNAME"] for r in self.holders(record)] if record else []
        return []


# --- partitions the kernel has no nodes for ----------------------------------------------
_FS_NAMES = {"NTFS": "ntfs", "FAT32": "vfat", "FAT16": "vfat", "FAT12": "vfat",
             "exFAT": "exfat", "BitLocker": "BitLocker"}


def _peeked(device: BlockDevice, number: int, start: int, size: int, type_id: str,
            guid: str, name: str) -> DiskPartition:
    sector = device.logical_sector_size
    boot = device.read_at(start, sector) if start + sector <= device.size else b""
    fs_type = _FS_NAMES.get(gpt.looks_like_boot_sector(boot) or "", "") if boot else ""
    return DiskPartition(number=number, node=None, start=start, size=size, fs_type=fs_type,
                         fs_label="", fs_uuid="", part_uuid=guid, part_type=type_id,
                         part_name=name)


def _read_partitions(device: BlockDevice) -> list[DiskPartition]:
    sector = device.logical_sector_size
    found = gpt.read_gpt(device.read_at, sector, device.size // sector)
    if found is not None:
        return [_peeked(device, e.number, e.first_lba * sector,
                        (e.last_lba - e.first_lba + 1) * sector, e.type_guid, e.guid, e.name)
                for e in found[1]]
    lba0 = device.read_at(0, sector)
    # A bare file system (an offset loop over one partition) also ends its first sector in
    # 55 AA, but its "partition entries" are boot code.
    if gpt.looks_like_boot_sector(lba0):
        return []
    mbr = gpt.parse_mbr(lba0)
    if not mbr.valid or mbr.protective:
        return []
    entries = [e for e in mbr.entries if e.type_id not in gpt.EXTENDED_TYPES]
    for extended in (e for e in mbr.entries if e.type_id in gpt.EXTENDED_TYPES):
        entries += gpt.read_logical_entries(device.read_at, sector, extended)
    return [_peeked(device, e.slot, e.start_lba * sector, e.sectors * sector,
                    f"{e.type_id:02X}", f"{mbr.signature:08X}-{e.slot:02d}", "")
            for e in entries]


def partitions_from_table(path: Path) -> tuple[DiskPartition, ...]:
    """Partitions read from the table bytes of a disk or image file (read-only, no loop
    device, no udev event): for loop devices without partx nodes and for image files.
    File-system labels stay empty; the type comes from the boot sector. Empty when the
    table cannot be read."""
    return _read_table_bytes(path)[1]


def _read_table_bytes(path: Path) -> tuple[int, tuple[DiskPartition, ...]]:
    """(sector size, partitions) as BlockDevice sees `path`: an image file's sector size
    is the one its table was made for (512 when it has none)."""
    try:
        with BlockDevice.open(path) as device:
            sector = device.logical_sector_size
            try:
                return sector, tuple(_read_partitions(device))
            except (RecoveryError, OSError, ValueError):
                return sector, ()
    except (RecoveryError, OSError, ValueError):
        return 512, ()


# --- building Disk objects ---------------------------------------------------------------
def _partition(record: Record, machine: _Machine) -> DiskPartition:
    # sysfs and blkid both count in 512-byte units, whatever the logical sector size.
    start = _int(record, "start", _int(record, "ID_PART_ENTRY_OFFSET")) * 512
    size = _int(record, "size", _int(record, "ID_PART_ENTRY_SIZE")) * 512
    number = _int(record, "partition",
                  _int(record, "PARTN", _int(record, "ID_PART_ENTRY_NUMBER")))
    return DiskPartition(
        number=number, node=Path(record["DEVNAME"]) if "DEVNAME" in record else None,
        start=start, size=size, fs_type=record.get("ID_FS_TYPE", ""),
        fs_label=_udev_decode(record.get("ID_FS_LABEL_ENC", record.get("ID_FS_LABEL", ""))),
        fs_uuid=record.get("ID_FS_UUID", ""),
        part_uuid=record.get("ID_PART_ENTRY_UUID", "").upper(),
        part_type=_mbr_or_guid(record.get("ID_PART_ENTRY_TYPE", "")),
        part_name=_udev_decode(record.get("ID_PART_ENTRY_NAME", "")),
        mountpoints=tuple(machine.own_mountpoints(record)))


def _byte_range(record: Record, within: Record | None = None) -> tuple[int, int]:
    """Bytes of the backing file a loop device (or one of its partitions) covers."""
    loop = within if within is not None else record
    start = _int(loop, "loop/offset") + (_int(record, "start") * 512 if within else 0)
    return start, start + _int(record, "size") * 512


def _shared_loop_mountpoints(record: Record, machine: _Machine) -> list[str]:
    """Mounts made through other loop devices over the part of the backing file this loop
    device covers (a technician's `losetup -o OFFSET` + mount of one partition)."""
    backing = _backing_file(record)
    if backing is None:
        return []
    mine_start, mine_end = _byte_range(record)
    found: list[str] = []
    for other in machine.loops_over(backing):
        if other is record:
            continue
        for device in [other, *machine.partitions_of(other)]:
            start, end = _byte_range(device, other if device is not other else None)
            if start < mine_end and mine_start < end:
                found += [m for m in machine.own_mountpoints(device) if m not in found]
    return found


def _holds_live_medium(record: Record, live_nodes: list[str], live_medium: Path) -> bool:
    """The disk under the live medium, or a loop device reading the live system from it
    (the squashfs root), is part of the running recovery system."""
    backing = _backing_file(record)
    return record.get("DEVNAME") in live_nodes or (
        backing is not None and backing.is_relative_to(live_medium))


def _disk(record: Record, machine: _Machine, live_nodes: list[str], live_medium: Path
          ) -> Disk:
    bus = _bus(record)
    partitions = sorted((_partition(p, machine) for p in machine.partitions_of(record)),
                        key=lambda p: (p.start, p.number))
    if not partitions and bus == "loop" and machine.resolve_paths:
        partitions = list(partitions_from_table(Path(record["DEVNAME"])))
    mountpoints = machine.own_mountpoints(record)
    mountpoints += [m for m in _shared_loop_mountpoints(record, machine) if m not in mountpoints]
    logical = _int(record, "queue/logical_block_size", 512)
    return Disk(
        stable_id=_stable_id(record), node=Path(record["DEVNAME"]), model=_model(record, bus),
        serial=_serial(record),
        wwn=record.get("ID_WWN_WITH_EXTENSION", record.get("ID_WWN", "")),
        bus=bus, size=_int(record, "size") * 512, logical_sector_size=logical,
        physical_sector_size=_int(record, "queue/physical_block_size", logical),
        removable=record.get("removable") == "1" or bus == "usb",
        read_only=record.get("ro") == "1", partitions=tuple(partitions),
        mountpoints=tuple(mountpoints), backing_file=_backing_file(record),
        holds_live_medium=_holds_live_medium(record, live_nodes, live_medium))


def _listing_order(disk: Disk) -> tuple[bool, list[tuple[int, str]]]:
    """Real disks before loop devices, then by node with numbers compared as numbers."""
    parts = re.split(r"(\d+)", str(disk.node))
    return disk.bus == "loop", [(int(t), "") if t.isdigit() else (0, t) for t in parts]


def _machine(source: UdevSource | None, mounts: list[Mount] | None) -> _Machine:
    live = source is None or isinstance(source, LiveUdev)
    source = source if source is not None else LiveUdev()
    if mounts is None:
        mounts = source.mount_table() if isinstance(source, MountSource) else read_mounts()
    return _Machine(source.block_devices(), mounts, read_swaps() if live else [], live)


def list_disks(source: UdevSource | None = None, mounts: list[Mount] | None = None,
               live_medium: Path = Path("/run/live/medium")) -> list[Disk]:
    """Every whole disk worth showing, sorted by device node.

    `source` defaults to this machine's udev; `mounts` to the source's mount table (a
    recording's own, or /proc/self/mountinfo).
    """
    machine = _machine(source, mounts)
    live_nodes = machine.live_medium_disks(live_medium)
    disks = [_disk(r, machine, live_nodes, live_medium) for r in machine.records
             if _is_listed(r) and "DEVNAME" in r and not machine.is_loop_over_device(r)]
    return sorted(disks, key=_listing_order)


# --- finding a disk ------------------------------------------------------------------------
def _matches(disk: Disk, identifier: str, resolved: str) -> bool:
    names = {str(disk.node), disk.stable_id, disk.serial, disk.wwn} - {""}
    return identifier in names or resolved == str(disk.node)


def find_disk(identifier: str, disks: list[Disk]) -> Disk:
    """The disk named by node (/dev/nvme0n1), a /dev/disk/by-* link, stable id or serial."""
    resolved = os.path.realpath(identifier) if identifier.startswith("/") else identifier
    found = [d for d in disks if _matches(d, identifier, resolved)]
    if len(found) == 1:
        return found[0]
    if found:
        raise SourceError(
            f"'{identifier}' matches {len(found)} disks: "
            + "; ".join(f"{d.node} {d.describe()}" for d in found) + ".",
            "Name the disk by its device node or stable id instead.")
    present = "; ".join(f"{d.node} {d.describe()} [{d.stable_id}]" for d in disks)
    raise SourceError(f"No disk matches '{identifier}'. Disks here: {present or 'none'}.",
                      "Check the cable or USB port, then use a device node, serial or stable "
                      "id of a listed disk.", hint=Hint.LIST_DISKS)


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _record_holding(path: Path, machine: _Machine) -> Record | None:
    """The udev record of the block device whose file system holds `path`."""
    device = os.stat(path).st_dev
    record = machine.by_devnum.get((os.major(device), os.minor(device)))
    if record is None:
        # FUSE (ntfs-3g) and btrfs report an anonymous device: ask the mount table instead.
        mount = mount_containing(path, machine.mounts)
        record = machine.record_of_mount(mount) if mount else None
    return record


def disks_holding(path: Path, disks: list[Disk], source: UdevSource | None = None,
                  mounts: list[Mount] | None = None) -> list[Disk]:
    """Every disk whose loss would destroy `path`: the disk of its file system first; for a
    file system on a loop device also the other loop devices over that image file and the
    disk that holds the image file. Empty when `path` lives in RAM (tmpfs) or nowhere."""
    machine = _machine(source, mounts)
    record = _record_holding(_existing_ancestor(path), machine)
    if record is None:
        return []
    nodes = [r.get("DEVNAME", "") for r in machine.holders(record)]
    by_node = {str(d.node): d for d in disks}
    return [by_node[n] for n in nodes if n in by_node]


def disk_holding(path: Path, disks: list[Disk]) -> Disk | None:
    """The disk that holds the file system of `path` (see `disks_holding` for all of them)."""
    holding = disks_holding(path, disks)
    return holding[0] if holding else None


def _overlap(start: int, end: int, other: tuple[int, int]) -> bool:
    return start < other[1] and other[0] < end


def mountpoints_over(path: Path, offset: int, size: int, source: UdevSource | None = None,
                     mounts: list[Mount] | None = None, depth: int = 0) -> list[str]:
    """Every mount point through which bytes [offset, offset + size) of the disk, partition
    or image file `path` can be reached: the device itself, its partitions over that
    range, and loop devices (or their partitions) over that range of it, such as the one
    ntfs-3g mounts a volume through."""
    machine = _machine(source, mounts)
    real = os.path.realpath(path)
    end = offset + size
    found: list[str] = []
    record = machine.by_node.get(real)
    reachable: list[tuple[Record, tuple[int, int]]] = []
    if record is not None:
        reachable.append((record, (0, 1 << 62)))
        reachable += [(part, (_int(part, "start") * 512,
                              (_int(part, "start") + _int(part, "size")) * 512))
                      for part in machine.partitions_of(record)]
    for loop in machine.loops_over(Path(real)):
        reachable.append((loop, _byte_range(loop)))
        reachable += [(part, _byte_range(part, loop)) for part in machine.partitions_of(loop)]
    for device, covered in reachable:
        if _overlap(offset, end, covered):
            found += [m for m in machine.own_mountpoints(device) if m not in found]
    backing = _backing_file(record) if record is not None else None
    if backing is not None and depth < _MAX_NESTING:
        # A loop device: the same bytes through other loop devices over its file.
        start = offset + _int(record or {}, "loop/offset")
        found += [m for m in mountpoints_over(backing, start, size, source, mounts, depth + 1)
                  if m not in found]
    return found


def describe_node(path: Path, disks: list[Disk] | None = None) -> Disk | None:
    """A Disk for one given block device or disk-image file; None when it is neither (or a
    partition). An image file counts as mounted when a loop device over it is mounted."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not (stat.S_ISBLK(info.st_mode) or stat.S_ISREG(info.st_mode)):
        return None
    disks = list_disks() if disks is None else disks
    real = Path(os.path.realpath(path))
    if stat.S_ISBLK(info.st_mode):
        return next((d for d in disks if d.node == real), None)
    loops = [d for d in disks if d.bus == "loop" and d.backing_file == real]
    mountpoints: list[str] = []
    for loop in loops:
        mountpoints += [m for m in loop.all_mountpoints if m not in mountpoints]
    # The same sector size BlockDevice reads the file with; an empty file says 512, and
    # a restore writes the image's own (the gate does not hold a file to a sector size).
    sector, partitions = _read_table_bytes(real)
    return Disk(stable_id=f"file:{real}", node=real, model=real.name, serial="", wwn="",
                bus="file", size=info.st_size, logical_sector_size=sector,
                physical_sector_size=sector, removable=False,
                read_only=not os.access(real, os.W_OK),
                partitions=partitions,
                mountpoints=tuple(mountpoints), backing_file=real,
                holds_live_medium=any(loop.holds_live_medium for loop in loops))
