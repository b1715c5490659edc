"""The QEMU harness's machine files and command lines (no guest is booted here)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from qemu import VM, BootMedium, load_machine, machine_names
from qemu.machine import MachineError, parse_machine
from qemu.vm import live_kernel_options

REPO = Path(__file__).resolve().parents[2]


def test_every_machine_file_loads() -> None:
    names = machine_names()
    assert {"bios-sata-usb", "uefi-nvme-usb", "uefi-secureboot", "uefi-all-buses"} <= set(names)
    for name in names:
        machine = load_machine(name)
        assert machine.disks and all(disk.serial for disk in machine.disks)


def test_machine_errors_name_the_field() -> None:
    with pytest.raises(MachineError, match="bus is 'scsi'"):
        parse_machine("x", {"disks": [{"name": "a", "bus": "scsi", "serial": "S"}]})
    with pytest.raises(MachineError, match="firmware"):
        parse_machine("x", {"firmware": "coreboot"})


def _command(tmp_path: Path, machine: str, mode: str = "cd", append: str = "") -> list[str]:
    iso = tmp_path / "recovery.iso"
    iso.touch()
    vm = VM(load_machine(machine), BootMedium(iso, mode=mode, append=append),  # type: ignore[arg-type]
            tmp_path)
    return vm.command_line()


def test_secure_boot_machine_uses_signed_firmware_and_fresh_vars(tmp_path: Path) -> None:
    argv = " ".join(_command(tmp_path, "uefi-secureboot"))
    assert "q35,smm=on" in argv and "property=secure,value=on" in argv
    assert "OVMF_CODE_4M.secboot.fd" in argv
    vars_copy = re.search(r"unit=1,file=(\S+)", argv)
    assert vars_copy and Path(vars_copy.group(1)).read_bytes() == \
        Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").read_bytes()


def test_disks_get_their_bus_serial_and_blank_files(tmp_path: Path) -> None:
    argv = _command(tmp_path, "uefi-all-buses")
    devices = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device"]
    assert any(d.startswith("nvme,") and "serial=NVME-0001" in d for d in devices)
    assert any(d.startswith("ide-hd,") and "serial=SATA-0001" in d for d in devices)
    assert any(d.startswith("virtio-blk-pci,") and "serial=VIRTIO-0001" in d for d in devices)
    assert any(d.startswith("usb-storage,") and "serial=USB-0001" in d for d in devices)
    assert (tmp_path / "uefi-all-buses-nvme.img").stat().st_size == 1 << 30
    assert "tcg" in argv and "-no-reboot" in argv


def test_kernel_boot_uses_the_iso_menus_options(tmp_path: Path) -> None:
    argv = _command(tmp_path, "bios-virtio", mode="kernel", append="recovery.run=shell")
    append = argv[argv.index("-append") + 1]
    assert append.startswith(live_kernel_options()) and append.endswith("recovery.run=shell")
    assert "boot=live" in append and "console=ttyS0,115200n8" in append


def test_fault_injection_goes_through_blkdebug(tmp_path: Path) -> None:
    argv = " ".join(_command(tmp_path, "uefi-nvme-faulty"))
    assert "file.driver=blkdebug" in argv
    assert 'event = "write_aio"' in next(tmp_path.glob("blkdebug-*.conf")).read_text()


def test_image_pins_every_python_dependency() -> None:
    """The image installs requirements.txt offline: it must cover pyproject's dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=!~ ]", dep)[0].lower() for dep in project["dependencies"]}
    pinned = {}
    for line in (REPO / "image-build" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name.lower()] = version
    assert wanted <= set(pinned), f"not pinned for the image: {wanted - set(pinned)}"
    assert all(pinned.values())


def test_guest_network_reaches_only_the_forwarded_servers_one_relay_per_connection(
        tmp_path: Path) -> None:
    iso = tmp_path / "recovery.iso"
    iso.touch()
    vm = VM(load_machine("bios-virtio"), BootMedium(iso, mode="cd"), tmp_path,
            guestfwd={"10.0.2.100:445": 40445, "10.0.2.100:2049": 42049})
    argv = vm.command_line()
    netdev = argv[argv.index("-netdev") + 1]
    assert netdev.startswith("user,id=net0,restrict=on,")
    # A program per guest connection (cmd:), never one shared stream (tcp:) that a server
    # closes while the guest boots.
    rules = re.findall(r"guestfwd=([^,]+)", netdev)
    assert rules == ["tcp:10.0.2.100:445-cmd:socat STDIO TCP:127.0.0.1:40445",
                     "tcp:10.0.2.100:2049-cmd:socat STDIO TCP:127.0.0.1:42049"]
    assert argv[argv.index("-device", argv.index("-netdev")) + 1] == "e1000e,netdev=net0"
    no_network = VM(load_machine("bios-virtio"), BootMedium(iso, mode="cd"), tmp_path)
    assert "-netdev" not in no_network.command_line()


def test_a_silent_second_nic_and_the_cpu_model(tmp_path: Path) -> None:
    """silent_nic: a second e1000e on a QEMU hub with nothing else on it (a link and no DHCP
    server); the machine's cpu goes to -cpu (default max)."""
    iso = tmp_path / "recovery.iso"
    iso.touch()
    machine = load_machine("bios-virtio")
    vm = VM(dataclasses.replace(machine, cpu="max,-avx2"), BootMedium(iso, mode="cd"),
            tmp_path, guestfwd={}, silent_nic="52:54:00:00:0d:0d")
    argv = vm.command_line()
    assert argv[argv.index("-cpu") + 1] == "max,-avx2"
    hub = argv.index("hubport,id=silent,hubid=1")
    assert argv[hub + 2] == "e1000e,netdev=silent,mac=52:54:00:00:0d:0d"
    assert machine.cpu == "max"
