"""The TUI on the PC's own screen (tty1), not the serial console the other tests watch.

BIOS and UEFI CD boots: the boot prints a line per phase, the home screen appears on tty1
(the time from QEMU start is printed), and on each screen walked each character on screen
(/dev/vcsu1) is one the loaded console font can draw (its Unicode map from the kernel, as
getunimap reads it), in a colour other than its background (/dev/vcsa1's attributes, as
the console driver draws them: a 512-glyph font leaves vgacon 8 text colours). Both walk
home, every capture step, the restore wizard's four steps and restore points' first step.
BIOS captures for real (a first capture onto a new store on the USB drive, its result,
home listing that store, the action log) and rolls a registry back on a third disk
(virtio: a Windows volume whose SYSTEM hive is corrupt, a restore point holding the good
one, as test_rollback builds it): the point's diff, the rollback's progress (every screen
of it read while it runs), its result, then the undo; UEFI walks the restore wizard on a store
made on the host, then the capture wizard up to its summary, never starting it (no second
capture under TCG).
The serial console runs a shell for the checks: its own TUI starts only when a key arrives
there.

RECOVERY_SCREENDUMPS=DIR keeps the QEMU screendumps (PNG) of each step in DIR.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from qemu import VM, BootMedium, DiskSpec, load_machine
from tests.e2e.conftest import BOOT_TIMEOUT, LiveImage
from tests.e2e.test_boot import READY
from tests.e2e.test_rollback import broken_windows_disk
from tests.e2e.windisk import make_gpt_disk, make_mbr_disk, make_store_disk, store_with_image

GiB = 1 << 30
CHECKER = Path(__file__).with_name("vcsu_check.py")
# The whole TUI follows the boot here: allow for a host busy with other test runs.
CONSOLE_BOOT_TIMEOUT = 2.5 * BOOT_TIMEOUT
# Small: the capture under TCG is most of this test's time.
SYSTEM_SIZE = 512 << 20
SYSTEM_SHOWN = "536.9 MB"
# The store the capture made, as the home screen lists it ("PATH  (N free on DISK)"); the
# capture's result screen names the path too, but not so.
NEW_STORE = "/recovery-images  ("
HOST_STORE = "/images  ("  # UEFI: the store made on the host, as home lists it
PHASES = ("looking for the recovery medium", "recovery medium mounted; starting the system")
# A result screen's footer (keys in words on TERM=linux): the technician's way back. The
# results' screendumps once showed no footer: taken before Textual had drawn it.
DONE_KEY = "Esc Done"
FIRST_FRAME_FILES = "/usr/share/recovery/first-frame-files"


def install_checker(vm: VM) -> None:
    encoded = base64.b64encode(CHECKER.read_bytes()).decode()
    vm.shell(f"echo {encoded} | base64 -d > /tmp/vcsu_check.py")


def wait_on_tty1(vm: VM, text: str, timeout: float = 180) -> float:
    """Wait until tty1 shows `text`; returns the guest's uptime then."""
    # Once a second, by the guest's clock: each look forks two programs, which under TCG
    # takes CPU time from the TUI being watched.
    output = vm.shell(
        f"end=$((SECONDS+{int(timeout)})); while [ $SECONDS -lt $end ]; do "
        f"iconv -f UTF-32LE -t UTF-8 /dev/vcsu1 2>/dev/null "
        f"| grep -qF {shlex.quote(text)} && break; sleep 1; done; "
        f"iconv -f UTF-32LE -t UTF-8 /dev/vcsu1 | grep -qF {shlex.quote(text)} "
        "&& cut -d' ' -f1 /proc/uptime", timeout=timeout + 60, check=False)
    match = re.search(r"^([\d.]+)$", output, re.MULTILINE)
    assert match, f"tty1 never showed {text!r}:\n{check_screen(vm)['text']}"
    return float(match.group(1))


def check_screen(vm: VM, probe: bool = False) -> dict[str, object]:
    line = vm.shell("python3 /tmp/vcsu_check.py /dev/tty1" + (" --probe" if probe else ""),
                    timeout=120)
    result: dict[str, object] = json.loads(line.strip().splitlines()[-1])
    return result


def step(vm: VM, name: str, expect: str, dumps: Path, timeout: float = 180) -> None:
    wait_on_tty1(vm, expect, timeout)
    vm.screendump(dumps / f"{name}.png")
    screen = check_screen(vm)
    assert screen["unreadable"] == {}, (
        f"{name}: text drawn in its background colour: {screen['unreadable']}\n"
        f"{screen['text']}")
    assert screen["missing"] == {}, (
        f"{name}: characters the console font cannot draw: {screen['missing']}\n"
        f"{screen['text']}")


def walk(vm: VM, dumps: Path, steps: list[tuple[str, str]]) -> None:
    """Enter, then check the step that follows, for each (name, text shown) in turn."""
    for name, expect in steps:
        vm.keys("ret")
        step(vm, name, expect, dumps)


@pytest.mark.parametrize(("machine", "make_disk", "whole_flow"), [
    ("bios-sata-usb", make_mbr_disk, True), ("uefi-nvme-usb", make_gpt_disk, False)])
def test_every_glyph_on_tty1_is_in_the_console_font(live_image: LiveImage, tmp_path: Path,
                                                     machine: str, make_disk: object,
                                                     whole_flow: bool) -> None:
    """Every wizard step on both; BIOS captures onto a new store on the USB drive, UEFI's
    drive holds a store with an image of the system disk made on the host."""
    system, store = tmp_path / "system.img", tmp_path / "store.img"
    make_disk(system, SYSTEM_SIZE, tmp_path)  # type: ignore[operator]
    if whole_flow:
        make_store_disk(store, 1 * GiB, "NEWSTICK")
    else:
        store_with_image(store, 1 * GiB, "NEWSTICK", system, tmp_path / "stick")
    dumps = Path(os.environ.get("RECOVERY_SCREENDUMPS") or tmp_path / "dumps") / machine
    dumps.mkdir(parents=True, exist_ok=True)
    config, disks = load_machine(machine), {"system": system, "store": store}
    if whole_flow:  # the registry rollback's volume, on a virtio disk (vda)
        disks["rollback"] = broken_windows_disk(tmp_path / "rollback")
        config = replace(config, disks=(*config.disks, DiskSpec(
            "rollback", "virtio", "VIRTIO-SYS-0001", disks["rollback"].stat().st_size)))
    with VM(config, BootMedium(live_image.iso), tmp_path / "vm", disks,
            timeout=CONSOLE_BOOT_TIMEOUT + 1500) as vm:
        ready = vm.wait_for(READY, timeout=CONSOLE_BOOT_TIMEOUT)
        # These two CD boots are also test_boot's BIOS and UEFI CD cases (one boot each).
        assert (ready.group(2), ready.group(3)) == (machine.split("-")[0], "off")
        offset = vm.elapsed - float(ready.group(1))  # QEMU start to guest uptime 0
        text = vm.output
        for phase in PHASES:
            assert phase in text, f"the boot did not say {phase!r}"
        vm.wait_for("Press Enter to start the recovery program on this serial console")
        vm.send("s")
        vm.wait_for("Shell: type 'exit'")
        vm.wait_for(r"# $", timeout=60)
        home = wait_on_tty1(vm, "Image stores")
        assert "login:" not in vm.output  # the TUI owns tty1, the shell the serial line
        print(f"{machine}: home screen on tty1 {home + offset:.1f} s after QEMU started "
              f"(guest uptime {home:.1f} s; console marker at {float(ready.group(1)):.1f} s)")
        install_checker(vm)
        # recovery-console read these ahead of the TUI (recovery/ui/tui/prefetch.py): the
        # build's list names the image's own files, all there.
        listed = vm.shell(f"xargs -a {FIRST_FRAME_FILES} ls -d >/dev/null "
                          f"&& wc -l < {FIRST_FRAME_FILES}")
        assert int(listed.split()[-1]) > 100
        # The home screen is drawn before the disks are listed: wait for the system disk.
        step(vm, "home", SYSTEM_SHOWN, dumps)
        if whole_flow:
            open_capture(vm, dumps, 2)
            capture_onto_a_new_store(vm, dumps)
            # Step 3 is checked once it lists the captured disk, offered first ("[source
            # of this image]", wrapped at 80 columns).
            restore_and_points(vm, dumps, "[source of")
            roll_back_and_undo(vm, dumps)
            checker_sees_hidden_text(vm)  # vgacon (BIOS text mode)
        else:
            # The store made on the host is listed once home's scan has mounted its drive;
            # the restore wizard takes home's list as it is when it opens. The host-made
            # image names no disk here: step 3 is checked once it lists the NVMe disk.
            wait_on_tty1(vm, HOST_STORE)
            restore_and_points(vm, dumps, "nvme0n1")
            vm.keys("esc")
            wait_on_tty1(vm, "Image stores")
            open_capture(vm, dumps, 5)  # and no further: nothing is captured
            checker_sees_hidden_text(vm)  # fbcon (UEFI frame buffer)


def checker_sees_hidden_text(vm: VM) -> None:
    """The colour check can fail: black on black and white on white written over the
    TUI's top line are reported, light grey on black is not (the attribute decoded as this
    console driver and font draw it). The checker writes the probe itself and reads the
    screen back at once: the TUI may repaint its top line at any moment (vcsu_check.py)."""
    screen = check_screen(vm, probe=True)
    assert screen["probe_seen"], f"the probe was not on tty1 when read back: {screen}"
    assert screen["unreadable"] == {"H": 1, "I": 1, "D": 2, "E": 1, "N": 1}, screen


def open_capture(vm: VM, dumps: Path, last: int) -> None:
    """From home: the capture wizard's steps 1 to `last`."""
    vm.keys("c")
    step(vm, "capture-1-source", "Capture 1/5", dumps)
    names = ["partitions", "store", "name", "summary"]
    walk(vm, dumps, [(f"capture-{n}-{names[n - 2]}", f"Capture {n}/5")
                     for n in range(2, last + 1)])


def capture_onto_a_new_store(vm: VM, dumps: Path) -> None:
    """From capture step 2 on: a first capture onto the blank USB drive, the new store on
    the home screen."""
    vm.keys("ret")
    # The USB drive's empty ext4 file system, offered for a new store (first in the list).
    step(vm, "capture-3-store", "New store on", dumps)
    walk(vm, dumps, [("capture-4-name", "Capture 4/5"), ("capture-5-summary", "Capture 5/5")])
    vm.keys("ret")  # "Start the capture": onto the new store on the USB drive
    wait_on_tty1(vm, "Capture finished", timeout=900)
    step(vm, "capture-result", DONE_KEY, dumps)  # the footer: how to leave the result
    # The job is over: the drive the new store went onto is not mounted read-write.
    assert vm.shell("findmnt -rn -O rw -o TARGET | grep -c '^/run/recovery/stores' "
                    "|| true").strip().splitlines()[-1] == "0"
    vm.keys("ret")
    step(vm, "home-with-store", NEW_STORE, dumps)
    # The action log as a technician reads it after the job: wrapped at 80 columns.
    vm.keys("l")
    step(vm, "log", "capture finished: The disk", dumps)
    vm.keys("esc")
    wait_on_tty1(vm, "Image stores")


def restore_and_points(vm: VM, dumps: Path, target: str) -> None:
    """From home: the restore wizard up to its last step (step 1 checked once it lists a
    store, step 3 once it shows `target`), then restore points' first step."""
    vm.keys("r")
    wait_on_tty1(vm, "Restore 1/4")
    # Enter needs a store listed: BIOS's ".../recovery-images  (", UEFI's ".../images  (".
    step(vm, "restore-1-store", "images  (", dumps)
    walk(vm, dumps, [("restore-2-image", "Restore 2/4")])
    vm.keys("ret")
    wait_on_tty1(vm, "Restore 3/4")
    step(vm, "restore-3-target", target, dumps)
    vm.keys("ret")
    step(vm, "restore-4-lost", "Restore 4/4", dumps)
    vm.keys("esc", "esc", "esc", "esc")
    wait_on_tty1(vm, "Image stores")
    vm.keys("p")
    step(vm, "points-1-volume", "Restore points 1/3", dumps)


def as_read(text: str) -> str:
    """tty1's text as sentences: borders (box drawing or their ASCII fallbacks) and line
    breaks gone, so a sentence wrapped at 80 columns reads whole."""
    return " ".join(re.sub(r"[\u2500-\u259f|]", " ", text).split())


def on_screen(vm: VM) -> str:
    """What tty1 shows now, as sentences."""
    return as_read(str(check_screen(vm)["text"]))


def watch_job(vm: VM, keys: tuple[str, ...], until: str, dumps: Path, name: str
              ) -> list[str]:
    """Press `keys` (the last one starts a job) with tty1 watched from before the first
    until `until` is on it; every distinct screen seen, each glyph checked."""
    vm.shell("rm -f /tmp/watch.ready; python3 /tmp/vcsu_check.py /dev/tty1 "
             f"--until={shlex.quote(until)} --seconds=600 --ready=/tmp/watch.ready "
             "> /tmp/watch.json & "
             "while [ ! -e /tmp/watch.ready ]; do sleep 0.2; done")
    vm.keys(*keys)
    vm.screendump(dumps / f"{name}-progress.png")  # the job's screen, as it runs
    watched = json.loads(vm.shell("wait; cat /tmp/watch.json", timeout=660).splitlines()[-1])
    wait_on_tty1(vm, DONE_KEY)  # the result's footer: how to leave it
    vm.screendump(dumps / f"{name}-result.png")
    screens: list[str] = watched["screens"]
    assert watched["seen"], f"{name}: tty1 never showed {until!r}:\n{screens[-1]}"
    assert watched["missing"] == {}, (
        f"{name}: characters the console font cannot draw: {watched['missing']}")
    assert watched["unreadable"] == {}, f"{name}: {watched['unreadable']}"
    return screens


# A job screen that does not move: nothing of a known amount done yet, or no step named.
STUCK = re.compile(r"(\b0 B of [\d.]+ [kMGT]?B\b|Preparing…).*?elapsed (\d+):(\d\d)", re.S)


def check_progress(screens: list[str]) -> None:
    """A job's screens on tty1 as watched: the amount always has a total ("of ?" was
    seen) or the screen says what is being done, and no step sits at "0 B of N" or at
    "Preparing…" for 10 s or more (a 12 MB hive sat at 0 B for 30 s, counted only once
    written whole; exporting the points' hives was "Preparing…" for 20 s)."""
    print("on tty1:", *["  ".join(line.strip() for line in screen.splitlines()
                                  if line.strip()) for screen in screens], sep="\n")
    stuck: dict[str, list[int]] = {}
    for screen in screens:
        assert "of ?" not in screen, screen
        for total, minutes, seconds in STUCK.findall(screen):
            stuck.setdefault(total, []).append(int(minutes) * 60 + int(seconds))
    for total, elapsed in stuck.items():
        assert max(elapsed) - min(elapsed) < 10, f"{total!r} at elapsed seconds {elapsed}"


def roll_back_and_undo(vm: VM, dumps: Path) -> None:
    """From restore points' first step: the volume on vda (listed last, before "Open a
    volume ... at a path"), its point, the diff against the corrupt current SYSTEM hive,
    the rollback (its progress and result read on tty1), then its undo."""
    vm.keys("end", "up", "ret")
    step(vm, "points-2-list", "vss-1", dumps)
    vm.keys("ret")
    step(vm, "points-3-detail", "Restore points 3/3", dumps)
    detail = on_screen(vm)
    assert "The current SYSTEM hive cannot be read" in detail, detail
    assert "a rollback puts back the point's copy" in detail, detail
    assert "service removed" not in detail, detail
    assert "SAM: the same as in the point" in detail, detail  # was "Diff SAM:" alone
    vm.keys("r")
    wait_on_tty1(vm, "Replace the usable hives")  # the confirmation (the footer has "Roll back")
    check_progress(watch_job(vm, ("y",), "Rollback finished", dumps, "points-rollback"))
    result = on_screen(vm)
    assert "rolled back to restore point vss-1 of 2024-03-01 09:30 UTC" in result, result
    assert "Checked: every file written was read back" in result, result
    for raw in ("replaced:", "verified:", "record:", "['", "True"):
        assert raw not in result, f"{raw!r} on the result screen: {result}"
    vm.keys("ret")  # back on the volume step: the same volume, then its earlier rollbacks
    step(vm, "points-again", "Restore points 1/3", dumps)
    vm.keys("end", "up", "ret")
    wait_on_tty1(vm, "vss-1")
    vm.keys("u")
    step(vm, "points-undo", "[applied]", dumps)
    vm.keys("ret")
    wait_on_tty1(vm, "Put back the hives")  # the confirmation
    check_progress(watch_job(vm, ("y",), "Undo finished", dumps, "points-undo"))
    result = on_screen(vm)
    assert "was undone" in result and "Put back as they were before it: SYSTEM" in result, \
        result
    vm.keys("ret")
    wait_on_tty1(vm, "Restore points 1/3")
