"""The ISO itself boots on BIOS, UEFI and UEFI with Secure Boot, as a CD and as a USB stick,
to the recovery console on the serial port (the line tests and technicians both wait for)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from qemu import VM, BootMedium, load_machine
from recovery.sys import mtools
from tests.e2e.conftest import BOOT_TIMEOUT, BiosGuest, LiveImage
from tests.e2e.windisk import make_gpt_disk, store_with_image

MiB = 1 << 20
BOOT_FILES = "/EFI/Microsoft/Boot"

READY = re.compile(r"RECOVERY-CONSOLE-READY tty=ttyS0 uptime=([\d.]+) firmware=(\w+) "
                   r"secureboot=(\w+)\r?\n")  # whole line: it may arrive in pieces


# BIOS and UEFI CD boots without Secure Boot are test_console.py's two boots (the same
# marker checked there): one QEMU boot each instead of two.
@pytest.mark.parametrize(("machine", "mode", "firmware", "secureboot"), [
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


ISO_BUDGET = 160 * MiB  # docs/live-image.md: what each part costs


def test_iso_fits_the_budget_and_keeps_what_networking_needs(live_image: LiveImage,
                                                             tmp_path: Path) -> None:
    """No boot: the ISO's size, and the squashfs's list of files (unsquashfs -l)."""
    size = live_image.iso.stat().st_size
    print(f"ISO {size / MiB:.1f} MiB (budget {ISO_BUDGET // MiB} MiB)")
    assert size <= ISO_BUDGET, f"the ISO is {size / MiB:.1f} MiB, over the budget"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(live_image.iso), "-extract",
                    "/live/filesystem.squashfs", str(tmp_path / "fs.squashfs")],
                   check=True, capture_output=True)
    listing = subprocess.run(["unsquashfs", "-l", str(tmp_path / "fs.squashfs")], check=True,
                             capture_output=True, text=True).stdout
    kernel = "/kernel/"
    for needed in (f"{kernel}drivers/net/ethernet/intel/e1000e/e1000e.ko",
                   f"{kernel}drivers/net/ethernet/realtek/r8169.ko",
                   f"{kernel}drivers/net/usb/r8152.ko", f"{kernel}drivers/net/usb/ax88179_178a.ko",
                   f"{kernel}fs/smb/client/cifs.ko", f"{kernel}fs/nfs/nfsv4.ko",
                   f"{kernel}fs/nfs/nfsv3.ko", "/firmware/rtl_nic/rtl8168h-2.fw",
                   "/sbin/mount.cifs", "/sbin/mount.nfs", "/bin/sshfs", "/lib/udev/hwdb.bin",
                   # The new-store format's default: mkfs.exfat and the kernel's driver
                   # (exfat-fuse is only the fallback for hosts without it).
                   f"{kernel}fs/exfat/exfat.ko", "/sbin/mkfs.exfat"):
        assert needed in listing, f"{needed} is not in the image"
    for gone in ("/usr/share/perl/", "/lib/udev/hwdb.d/20-OUI.hwdb", "/kernel/lib/test_bpf.ko"):
        assert gone not in listing, f"{gone} is in the image again"


def captured_store_stick(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A USB stick (ext4, label RSTORE) holding a store with image "pc" of a GPT disk, and
    the SHA-256 of each file in its ESP's boot folder (conftest's bios_guest has it)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    disk = make_gpt_disk(tmp_path / "pc.img", 1024 * MiB, tmp_path / "build")
    esp = disk.volumes[0].start
    expected = {name: hashlib.sha256(mtools.mtype(disk.image, esp, f"{BOOT_FILES}/{name}"))
                .hexdigest() for name in mtools.mdir(disk.image, esp, BOOT_FILES)}
    stick = tmp_path / "stick.img"
    store_with_image(stick, 1024 * MiB, "RSTORE", disk.image, tmp_path / "stick")
    return stick, expected


def test_shell_has_the_tools_and_no_swap_no_network_no_automount(bios_guest: BiosGuest
                                                                ) -> None:
    vm = bios_guest.vm
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
    # Address-space randomisation was off only while the initramfs ran (under TCG its
    # processes' translations otherwise cost up to a minute after switch_root, see
    # docs/live-image.md "session 9"), and is on for the system itself.
    aslr = vm.shell("dmesg | grep -o 'recovery: address-space randomisation.*'; "
                    "cat /proc/sys/kernel/randomize_va_space").splitlines()
    assert aslr == ["recovery: address-space randomisation off while the initramfs runs",
                    "recovery: address-space randomisation on again (randomize_va_space=2)",
                    "2"]
    # The boot's cuts of docs/live-image.md "session 11": live-boot's Netbase step did not
    # run (it writes loopback lines over the image's /etc/network/interfaces and re-runs
    # udev over every device), the kernel's crypto self-tests did not hold up its start, and
    # the consoles start without waiting for local-fs, tmpfiles and udevd.
    assert "iface lo" not in vm.shell("cat /etc/network/interfaces")
    assert vm.shell("dmesg | grep -c 'self-tests for CTR-KDF' || true") == "0"
    after = vm.shell("systemctl show -p After --value recovery-console@tty1.service").split()
    assert not {"local-fs.target", "systemd-udevd.service"} & set(after), after
    # SMART health through the image's smartctl: QEMU's AHCI disk answers, its usb-storage
    # bridge does not (not even through -d sat), which is "unknown", not an error.
    listing = json.loads(vm.shell("dmesg -n 1; recovery disks --json"))
    health = {d["bus"]: d["health"] for d in listing["disks"] if not d["holds_live_medium"]}
    assert health["sata"]["status"] == "ok"
    assert health["sata"]["attributes"]["self_assessment"] == "PASSED"
    assert health["usb"]["status"] == "unknown"
    assert "USB bridge passes no SMART data" in health["usb"]["reasons"][0]
    check_image_mounts(vm, bios_guest.esp_files)


def check_image_mounts(vm: VM, esp_files: dict[str, str]) -> None:
    """`recovery mount` in the live image (its FUSE, kernel vfat and ntfs-3g): the image's
    FAT ESP and NTFS Windows volume open read-only, the ESP's files are the captured ones,
    and `recovery unmount` leaves nothing mounted."""
    vm.shell("mkdir -p /mnt/stick /mnt/esp /mnt/win && "
             "mount -o ro /dev/disk/by-label/RSTORE /mnt/stick")
    store = "--store /mnt/stick/images pc"
    vm.shell(f"recovery mount {store} --partition 1 /mnt/esp --json >/dev/null", timeout=120)
    sums = vm.shell(f"(cd /mnt/esp{BOOT_FILES} && sha256sum *)", timeout=120)
    found = {name: digest for digest, name in
             (line.split(maxsplit=1) for line in sums.splitlines() if line.strip())}
    assert found == esp_files
    vm.shell(f"recovery mount {store} --partition 3 /mnt/win --json >/dev/null", timeout=120)
    assert "file000.bin" in vm.shell("ls /mnt/win/dir0", timeout=60)
    assert "ro," in vm.shell("grep ' /mnt/win ' /proc/mounts")
    for point in ("/mnt/esp", "/mnt/win"):
        vm.shell(f"recovery unmount {point} --json >/dev/null", timeout=60)
    assert vm.shell("grep -E ' /mnt/(esp|win)' /proc/mounts || true") == ""
    vm.shell("umount /mnt/stick")  # the boot is shared: the next job mounts the stick
