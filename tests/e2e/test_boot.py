"""The ISO itself boots on BIOS, UEFI and UEFI with Secure Boot, as a CD and as a USB stick,
to the recovery console on the serial port (the line tests and technicians both wait for)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qemu import VM, BootMedium, load_machine
from tests.e2e.conftest import BOOT_TIMEOUT, LiveImage

READY = re.compile(r"RECOVERY-CONSOLE-READY tty=ttyS0 uptime=([\d.]+) firmware=(\w+) "
                   r"secureboot=(\w+)\r?\n")  # whole line: it may arrive in pieces


@pytest.mark.parametrize(("machine", "mode", "firmware", "secureboot"), [
    ("bios-virtio", "cd", "bios", "off"),
    ("uefi-nvme-usb", "cd", "uefi", "off"),
    ("uefi-secureboot", "cd", "uefi", "on"),
    ("uefi-secureboot", "usb", "uefi", "on"),
])
def test_iso_boots_to_the_recovery_console(live_image: LiveImage, tmp_path: Path,
                                           machine: str, mode: str, firmware: str,
                                           secureboot: str) -> None:
    medium = BootMedium(live_image.iso, mode=mode)  # type: ignore[arg-type]
    with VM(load_machine(machine), medium, tmp_path, timeout=BOOT_TIMEOUT) as vm:
        match = vm.wait_for(READY)
        print(f"{machine} {mode}: console ready {vm.elapsed:.1f} s after QEMU started "
              f"(guest uptime {match.group(1)} s)")
        assert (match.group(2), match.group(3)) == (firmware, secureboot)
        # The TUI (or, if it exits, the prompt in front of the shell) owns the console:
        # no login prompt anywhere on the serial line.
        assert "login:" not in vm.output


def test_shell_has_the_tools_and_no_swap_no_network_no_automount(boot_shell: object) -> None:
    vm: VM = boot_shell("bios-sata-usb")  # type: ignore[operator]
    assert "capture" in vm.shell("recovery --help")
    assert vm.shell("swapon --show --noheadings") == ""
    # Only the loopback interface, and nothing of the PC's disks is mounted.
    assert vm.shell("ls /sys/class/net") == "lo"
    mounts = vm.shell("grep -E '^/dev/(sd|nvme|vd)' /proc/mounts || true")
    assert mounts == ""
    manifest = vm.shell("grep -c '=' /usr/share/recovery/image-manifest.txt")
    assert int(manifest) > 100
    tools = vm.shell("for t in sgdisk sfdisk ntfs-3g ntfsclone partclone.ntfs mkfs.fat mcopy "
                     "udevadm smartctl; do command -v $t >/dev/null || echo missing $t; done")
    assert tools == ""
    # SMART health through the image's smartctl: QEMU's AHCI disk answers, its usb-storage
    # bridge does not (not even through -d sat), which is "unknown", not an error.
    listing = json.loads(vm.shell("dmesg -n 1; recovery disks --json"))
    health = {d["bus"]: d["health"] for d in listing["disks"] if not d["holds_live_medium"]}
    assert health["sata"]["status"] == "ok"
    assert health["sata"]["attributes"]["self_assessment"] == "PASSED"
    assert health["usb"]["status"] == "unknown"
    assert "USB bridge passes no SMART data" in health["usb"]["reasons"][0]
