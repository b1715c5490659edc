"""Machine descriptions: typed, parsed once from qemu/machines/<name>.yaml.

    description: UEFI PC, NVMe system disk, USB stick for the image store
    firmware: uefi            # bios | uefi | uefi-secureboot
    memory_mib: 2048
    cpu: max                  # QEMU -cpu (default max)
    disks:
      - name: system          # the test hands in an image file under this name
        bus: nvme             # nvme | sata | virtio | usb
        serial: NVME-SYS-0001
        size: 4GiB            # blank sparse file when the test gives none
        model: ""             # sata only (ATA model string)
        fault: ""             # "" | write-error | read-error (QEMU blkdebug)
        bad_sectors: []       # with a fault: only these 512-byte sectors fail (else all)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import yaml

from recovery.units import parse_size

MACHINES_DIR = Path(__file__).resolve().parent / "machines"

Firmware = Literal["bios", "uefi", "uefi-secureboot"]
Bus = Literal["nvme", "sata", "virtio", "usb"]
Fault = Literal["", "write-error", "read-error"]
FIRMWARES: tuple[Firmware, ...] = ("bios", "uefi", "uefi-secureboot")
BUSES: tuple[Bus, ...] = ("nvme", "sata", "virtio", "usb")
FAULTS: tuple[Fault, ...] = ("", "write-error", "read-error")


class MachineError(ValueError):
    """A machine file that does not describe a machine; names the file and the field."""


@dataclass(frozen=True)
class DiskSpec:
    name: str
    bus: Bus
    serial: str
    size: int
    model: str = ""
    fault: Fault = ""
    bad_sectors: tuple[int, ...] = ()  # empty: the fault covers every sector


@dataclass(frozen=True)
class Machine:
    name: str
    description: str
    firmware: Firmware
    disks: tuple[DiskSpec, ...]
    memory_mib: int = 2048
    cpus: int = 2
    # QEMU's -cpu. "max": every feature TCG emulates, AVX2 included (what real PCs have);
    # under TCG the wider SIMD paths run slower, not faster (docs/benchmarks.md, network).
    cpu: str = "max"

    def disk(self, name: str) -> DiskSpec:
        for disk in self.disks:
            if disk.name == name:
                return disk
        raise KeyError(f"machine {self.name} has no disk named {name!r}")


def machine_names() -> list[str]:
    return sorted(path.stem for path in MACHINES_DIR.glob("*.yaml"))


def load_machine(name_or_path: str | Path) -> Machine:
    """A machine by name (qemu/machines/NAME.yaml) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix != ".yaml":
        path = MACHINES_DIR / f"{name_or_path}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MachineError(f"cannot read machine file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise MachineError(f"{path}: expected a mapping at the top")
    return parse_machine(path.stem, raw, where=str(path))


def _choice(value: object, allowed: tuple[str, ...], field: str, where: str) -> str:
    if value not in allowed:
        raise MachineError(f"{where}: {field} is {value!r}; expected one of {', '.join(allowed)}")
    return str(value)


def _parse_disk(raw: object, where: str) -> DiskSpec:
    if not isinstance(raw, dict) or "name" not in raw or "serial" not in raw:
        raise MachineError(f"{where}: each disk needs at least name, bus, serial and size")
    size = raw.get("size", "1GiB")
    return DiskSpec(
        name=str(raw["name"]),
        bus=cast(Bus, _choice(raw.get("bus"), BUSES, "bus", where)),
        serial=str(raw["serial"]),
        size=size if isinstance(size, int) else parse_size(str(size)),
        model=str(raw.get("model", "")),
        fault=cast(Fault, _choice(raw.get("fault", ""), FAULTS, "fault", where)),
        bad_sectors=tuple(int(n) for n in cast(list[int], raw.get("bad_sectors", []))),
    )


def parse_machine(name: str, raw: dict[str, object], where: str = "<machine>") -> Machine:
    disks_raw = raw.get("disks", [])
    if not isinstance(disks_raw, list):
        raise MachineError(f"{where}: disks must be a list")
    disks = tuple(_parse_disk(item, where) for item in disks_raw)
    names = [disk.name for disk in disks]
    if len(set(names)) != len(names):
        raise MachineError(f"{where}: disk names must be unique, got {names}")
    return Machine(
        name=name,
        description=str(raw.get("description", "")),
        firmware=cast(Firmware, _choice(raw.get("firmware", "bios"), FIRMWARES, "firmware",
                                        where)),
        disks=disks,
        memory_mib=int(cast(int, raw.get("memory_mib", 2048))),
        cpus=int(cast(int, raw.get("cpus", 2))),
        cpu=str(raw.get("cpu", "max")),
    )
