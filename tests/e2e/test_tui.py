"""The TUI starts on the serial console by itself after boot and lists the PC's disks."""

from __future__ import annotations

import re
import time
from pathlib import Path

from qemu import VM, BootMedium, load_machine
from tests.e2e.conftest import BOOT_TIMEOUT, LiveImage

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
SERIALS = ("NVME-0001", "SATA-0001", "VIRTIO-0001", "USB-0001")
TUI_START_TIMEOUT = 300.0


def screen_text(vm: VM) -> str:
    """What the serial console showed, without the TUI's cursor and colour escapes."""
    return ESCAPES.sub("", vm.output)


def test_tui_home_screen_lists_the_disks_on_serial(live_image: LiveImage,
                                                   tmp_path: Path) -> None:
    machine = load_machine("uefi-all-buses")
    with VM(machine, BootMedium(live_image.iso, mode="kernel"), tmp_path,
            timeout=BOOT_TIMEOUT + TUI_START_TIMEOUT) as vm:
        vm.wait_for(r"RECOVERY-CONSOLE-READY tty=ttyS0", timeout=BOOT_TIMEOUT)
        ready_at = vm.elapsed
        # The serial console's TUI starts when a key arrives (tty1's has the CPU first).
        vm.wait_for("Press Enter to start the recovery program on this serial console")
        vm.send("\r")
        painted_at = None
        deadline = time.monotonic() + TUI_START_TIMEOUT
        while time.monotonic() < deadline:
            text = screen_text(vm)
            if painted_at is None and "Image stores" in text:
                painted_at = vm.elapsed  # the home screen is drawn; disks follow
            if all(serial in text for serial in SERIALS):
                break
            time.sleep(1)
        text = screen_text(vm)
        missing = [serial for serial in SERIALS if serial not in text]
        assert not missing, f"TUI did not show {missing}; serial log {vm.log_path}:\n" \
                            f"{text[-3000:]}"
        assert "The recovery program has ended" not in text
        print(f"TUI: console marker at {ready_at:.0f} s, home screen drawn at "
              f"{painted_at or vm.elapsed:.0f} s, every disk listed at {vm.elapsed:.0f} s "
              "after QEMU started")
