"""python3 -m qemu: boot the live image on a described machine from a shell.

    python3 -m qemu machines
    python3 -m qemu run uefi-nvme-usb --iso build/recovery.iso --disk system=win.img \
        --boot kernel --append "recovery.run=shell" --until RECOVERY-CONSOLE-READY
    python3 -m qemu record-udev uefi-all-buses --iso build/recovery.iso \
        --out tests/data/udev/uefi-all-buses.json
    python3 -m qemu record-smartctl uefi-all-buses --out tests/data/smartctl
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qemu.machine import Machine, MachineError, load_machine, machine_names
from qemu.vm import VM, BootMedium, QemuError

DEFAULT_ISO = Path(__file__).resolve().parents[1] / "build" / "recovery.iso"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m qemu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("machines", help="list the machine files in qemu/machines/")
    for name in ("run", "record-udev", "record-smartctl"):
        sub = commands.add_parser(name)
        sub.add_argument("machine", help="name in qemu/machines/ or path to a YAML file")
        sub.add_argument("--iso", type=Path, default=DEFAULT_ISO)
        sub.add_argument("--boot", choices=("cd", "usb", "kernel"),
                         default="kernel" if name == "record-udev" else "cd")
        sub.add_argument("--disk", action="append", default=[], metavar="NAME=FILE",
                         help="image file for a disk of the machine (default: blank file)")
        sub.add_argument("--workdir", type=Path, help="serial log and scratch files")
        sub.add_argument("--timeout", type=float, default=600, help="seconds for the boot")
    run = commands.choices["run"]
    run.add_argument("--append", default="", help="extra kernel options (--boot kernel)")
    run.add_argument("--until", help="stop when this regular expression shows on serial")
    record = commands.choices["record-udev"]
    record.add_argument("--out", type=Path, required=True)
    commands.choices["record-smartctl"].add_argument(
        "--out", type=Path, required=True, help="directory for qemu-<bus>-<option>.json")
    return parser


def _disks(pairs: list[str]) -> dict[str, Path]:
    disks = {}
    for pair in pairs:
        name, _, file = pair.partition("=")
        if not file:
            raise SystemExit(f"--disk wants NAME=FILE, got {pair!r}")
        disks[name] = Path(file)
    return disks


def _run(args: argparse.Namespace, workdir: Path) -> int:
    machine = load_machine(args.machine)
    medium = BootMedium(args.iso, mode=args.boot, append=args.append)
    with VM(machine, medium, workdir, _disks(args.disk), timeout=args.timeout) as vm:
        print(f"qemu: {machine.name} booting; serial log {vm.log_path}", file=sys.stderr)
        if args.until:
            vm.wait_for(args.until)
            print(vm.output.replace("\r", ""), end="")
            print(f"\nqemu: {args.until!r} after {vm.elapsed:.1f} s", file=sys.stderr)
            return 0
        status = vm.wait_exit()
        print(vm.output.replace("\r", ""), end="")
        print(f"\nqemu: powered off after {vm.elapsed:.1f} s (status {status})", file=sys.stderr)
        return status


@contextmanager
def _guest_shell(args: argparse.Namespace, machine: Machine, workdir: Path) -> Iterator[VM]:
    """The machine booted into the live image's shell, udev settled, kernel messages off
    the serial console (they would mix into command output)."""
    medium = BootMedium(args.iso, mode=args.boot, append="recovery.run=shell")
    with VM(machine, medium, workdir, _disks(args.disk), timeout=args.timeout) as vm:
        if medium.mode != "kernel":
            _choose_grub_entry(vm, SHELL_ENTRY)
        vm.wait_for("Shell: type 'exit'")
        vm.wait_for(r"[#$] $")
        vm.shell("udevadm settle; dmesg -n 1", timeout=60)
        yield vm


def _guest_text(vm: VM, command: str) -> str:
    """A command's stdout from the guest, carried over the serial console as base64."""
    encoded = vm.shell(f"{command} | base64 -w0", timeout=180)
    return base64.b64decode(re.sub(r"\s+", "", encoded)).decode()


def record_udev(args: argparse.Namespace, workdir: Path) -> int:
    """Boot the machine, record its udev database from inside, write it to --out."""
    machine = load_machine(args.machine)
    comment = (f"QEMU guest {machine.name} ({machine.description}); recorded by "
               f"python3 -m qemu record-udev from the live image")
    with _guest_shell(args, machine, workdir) as vm:
        text = _guest_text(vm, f"python3 -m recovery.sys.udev record '{comment}'")
    recording = json.loads(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")
    print(f"qemu: {len(recording.get('devices', []))} devices recorded into {args.out}",
          file=sys.stderr)
    return 0


# What is asked of each disk: smartctl's own detection with -a and -x, and for USB disks
# also the SAT pass-through the health reader falls back to.
SMARTCTL_QUERIES = {"a": "-a", "x": "-x"}


def record_smartctl(args: argparse.Namespace, workdir: Path) -> int:
    """Boot the machine, run `smartctl --json` on each of its disks inside the live image,
    and save each document as smartctl printed it, plus `recovery disks` as the image
    shows them."""
    machine = load_machine(args.machine)
    args.out.mkdir(parents=True, exist_ok=True)
    with _guest_shell(args, machine, workdir) as vm:
        listing = json.loads(_guest_text(vm, "python3 -m recovery disks --json"))
        saved = 0
        for disk in listing["disks"]:
            if disk["holds_live_medium"] or disk["bus"] not in ("nvme", "sata", "usb", "virtio"):
                continue
            types = ["", "sat"] if disk["bus"] == "usb" else [""]
            for device_type in types:
                for tag, option in SMARTCTL_QUERIES.items():
                    flag = f"-d {device_type} " if device_type else ""
                    text = _guest_text(vm, f"smartctl --json {option} {flag}{disk['node']}")
                    name = f"qemu-{disk['bus']}{'-' + device_type if device_type else ''}"
                    (args.out / f"{name}-{tag}.json").write_text(text)
                    saved += 1
        # What the live image itself makes of them (`recovery disks --json`, health included).
        (args.out / f"recovery-disks-{machine.name}.json").write_text(
            json.dumps(listing, indent=1) + "\n")
    print(f"qemu: {saved} smartctl documents recorded into {args.out}", file=sys.stderr)
    return 0


# GRUB's menu (image-build/grub/grub.cfg): a CD or USB boot reaches a shell through its
# third entry, as a technician would choose it; kernel options can only be added to
# direct kernel boots.
SHELL_ENTRY = 2
DOWN = "\x1b[B"


def _choose_grub_entry(vm: VM, index: int) -> None:
    vm.wait_for("Recovery: shell only")
    vm.send(DOWN * index + "\r")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "machines":
        for name in machine_names():
            print(f"{name:20} {load_machine(name).description}")
        return 0
    try:
        if args.workdir:
            return _dispatch(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix="qemu-") as scratch:
            return _dispatch(args, Path(scratch))
    except (QemuError, MachineError) as exc:
        print(f"qemu: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, workdir: Path) -> int:
    if args.command == "record-smartctl":
        return record_smartctl(args, workdir)
    return _run(args, workdir) if args.command == "run" else record_udev(args, workdir)


if __name__ == "__main__":
    sys.exit(main())
