"""The TUI starts on the serial console by itself after boot and lists the PC's disks."""

from __future__ import annotations

import re
import time
from pathlib import Path

from qemu import VM, BootMedium, load_machine
from recovery.model.netstore import parse_url
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


def wait_on_screen(vm: VM, text: str | tuple[str, ...], since: int,
                   timeout: float = TUI_START_TIMEOUT, poll: float = 0.5) -> int:
    """Wait until `text` (or one of them) is drawn after output offset `since` (escapes
    removed); returns the offset to look from next."""
    texts = (text,) if isinstance(text, str) else text
    deadline = time.monotonic() + timeout
    while True:
        output = vm.output
        if any(one in ESCAPES.sub("", output[since:]) for one in texts):
            return len(output)
        if time.monotonic() > deadline:
            raise AssertionError(f"the TUI did not show {text!r}; serial log {vm.log_path}:"
                                 f"\n{ESCAPES.sub('', output[since:])[-3000:]}")
        time.sleep(poll)


def type_into_field(vm: VM, text: str, masked: bool, since: int) -> int:
    """Type `text` one key at a time, each only after the field shows the one before
    (Textual redraws the whole field on each key; a password shows as bullets, or as '*'
    where the console's font has no bullet). Keys sent while the TUI was still catching up
    under TCG went missing: the URL lost characters, and a password checked only by its
    last bullets was refused by the server."""
    for end in range(1, len(text) + 1):
        vm.send(text[end - 1])
        # A password's bullets are counted exactly (between the padding and the cursor).
        shown = (f" {chr(0x2022) * end} ", f" {'*' * end} ") if masked else text[:end][-6:]
        since = wait_on_screen(vm, shown, since, timeout=120, poll=0.1)
    return since


NETWORK_LINE = re.compile(r"Network: [^\r\n]*?\(n: network\)")


def check_tui_opens_an_ssh_share(vm: VM, url: str, password: str, fingerprint: str,
                                 image: str, address: str = "10.0.2.15/24",
                                 silent_port: str = "") -> None:
    """From the guest's shell on serial: the TUI's home shows the port's address (and
    names `silent_port`, a port whose DHCP requests nobody answers, "no DHCP answer");
    `a` asks the store's URL; the password goes into a masked field; the SSH server's host
    key is not known in the guest, so its fingerprint is shown and trusted with `y`; the
    store is listed and the restore wizard lists its image. (Called from a boot that has
    the network and the servers: tests/e2e/test_netstore.py.)"""
    start = len(vm.output)
    started = vm.elapsed
    vm.send("recovery tui\r")
    wait_on_screen(vm, address, start)  # on the home screen's network line
    if silent_port:
        # Polled every 5 s; networkd asked again from scratch when the static address
        # test restarted it, so "no DHCP answer" may take NO_ANSWER_SECONDS more.
        wait_on_screen(vm, f"{silent_port}: no DHCP answer in ", start, timeout=180)
        lines = NETWORK_LINE.findall(ESCAPES.sub("", vm.output[start:]))
        print(f"guest: TUI home on serial: {lines[-1] if lines else '(no network line)'}")
    asked = len(vm.output)
    vm.send("a")
    wait_on_screen(vm, "Directory or URL of the image store", asked, timeout=120)
    since = wait_on_screen(vm, "/mnt", asked, timeout=120)  # the field, drawn and focused
    vm.send("\x05")  # ctrl+e: to the end of "/mnt" (focus selected it all)
    for _ in "/mnt":
        vm.send("\x7f")
        time.sleep(0.3)
    typed_at = vm.elapsed
    since = type_into_field(vm, url, False, since)
    vm.send("\r")
    since = wait_on_screen(vm, "Password for", since, timeout=120)
    since = type_into_field(vm, password, True, since)
    vm.send("\r")
    asked = since
    since = wait_on_screen(vm, "is not known yet", asked, timeout=300)
    since = wait_on_screen(vm, fingerprint[:24], asked, timeout=30)  # "SHA256:" + 17
    vm.send("y")
    row = parse_url(url).mount_name()  # in the mount point's path: the store's row
    since = wait_on_screen(vm, row, since, timeout=300)
    opened_at = vm.elapsed
    vm.send("r")
    since = wait_on_screen(vm, "Restore 1/4", since, timeout=120)
    vm.send("\r")  # the only store
    since = wait_on_screen(vm, image, since, timeout=120)
    quit_tui(vm, since)
    assert password not in vm.output
    print(f"guest: TUI: URL and password typed and the store opened in "
          f"{opened_at - typed_at:.0f} s, {image} listed in its restore wizard "
          f"{vm.elapsed - opened_at:.0f} s later ({vm.elapsed - started:.0f} s in all)")


def quit_tui(vm: VM, since: int) -> None:
    """ctrl+q (Textual's quit, from any screen; the TUI turns the tty's XON/XOFF flow
    control off while it runs, so 0x11 reaches it on a serial line too), then wait for the
    TUI to leave the alternate screen and the shell's prompt before typing again: a command
    sent at once was read as keys by the TUI while it was still ending under TCG, and lost."""
    vm.send("\x11")
    deadline = time.monotonic() + 120
    while True:
        output = vm.output
        left = output.find("\x1b[?1049l", since)  # the TUI's last write
        if left >= 0 and "# " in ESCAPES.sub("", output[left:]):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"ctrl+q did not end the TUI; serial log {vm.log_path}:\n"
                                 f"{ESCAPES.sub('', output[since:])[-3000:]}")
        time.sleep(0.2)
