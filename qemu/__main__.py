"""python3 -m qemu: boot the live image on a described machine from a shell.

    python3 -m qemu machines
    python3 -m qemu run uefi-nvme-usb --iso build/recovery.iso --disk system=win.img \
        --boot kernel --append "recovery.run=shell" --until RECOVERY-CONSOLE-READY
    python3 -m qemu record-udev uefi-all-buses --iso build/recovery.iso \
        --out tests/data/udev/uefi-all-buses.json
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import tempfile
from pathlib import Path

from qemu.machine import MachineError, load_machine, machine_names
from qemu.vm import VM, BootMedium, QemuError

DEFAULT_ISO = Path(__file__).resolve().parents[1] / "build" / "recovery.iso"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m qemu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("machines", help="list the machine files in qemu/machines/")
    for name in ("run", "record-udev"):
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


def record_udev(args: argparse.Namespace, workdir: Path) -> int:
    """Boot the machine, record its udev database from inside, write it to --out."""
    machine = load_machine(args.machine)
    medium = BootMedium(args.iso, mode=args.boot, append="recovery.run=shell")
    comment = (f"QEMU guest {machine.name} ({machine.description}); recorded by "
               f"python3 -m qemu record-udev from the live image")
    with VM(machine, medium, workdir, _disks(args.disk), timeout=args.timeout) as vm:
        if medium.mode != "kernel":
            _choose_grub_entry(vm, SHELL_ENTRY)
        vm.wait_for("Shell: type 'exit'")
        vm.wait_for(r"[#$] $")
        vm.shell("udevadm settle", timeout=60)
        encoded = vm.shell(f"python3 -m recovery.sys.udev record '{comment}' | base64 -w0",
                           timeout=120)
    text = base64.b64decode(re.sub(r"\s+", "", encoded)).decode()
    recording = json.loads(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")
    print(f"qemu: {len(recording.get('devices', []))} devices recorded into {args.out}",
          file=sys.stderr)
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
    return _run(args, workdir) if args.command == "run" else record_udev(args, workdir)


if __name__ == "__main__":
    sys.exit(main())
