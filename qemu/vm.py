"""A QEMU virtual machine as a context manager: start, watch the serial console, always kill.

    with VM(load_machine("uefi-nvme-usb"), BootMedium(iso), workdir, disks={...}) as vm:
        vm.wait_for(r"RECOVERY-CONSOLE-READY", timeout=120)
        output = vm.shell("lsblk")

The serial console is a Unix socket that QEMU waits on before starting the guest, so no byte
is lost; every byte goes to `workdir/serial.log` as it arrives.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from qemu.machine import DiskSpec, Machine

REPO = Path(__file__).resolve().parents[1]
GRUB_CFG = REPO / "image-build" / "grub" / "grub.cfg"
OVMF_DIR = Path("/usr/share/OVMF")
QEMU = "qemu-system-x86_64"
TAIL_LINES = 40


class QemuError(RuntimeError):
    """QEMU could not start, or the guest did not do what was expected."""


class SerialTimeout(QemuError):
    """Something expected on the serial console did not appear in time."""


class GuestCommandError(QemuError):
    """A shell command inside the guest exited non-zero."""


@dataclass(frozen=True)
class BootMedium:
    """How the live system starts: the ISO as a CD or USB stick, or its kernel directly.

    In "kernel" mode the ISO is still attached as a CD: live-boot finds the squashfs on it.
    """

    iso: Path
    mode: Literal["cd", "usb", "kernel"] = "cd"
    append: str = ""  # extra kernel options; "kernel" mode only (GRUB owns them otherwise)
    kernel: Path | None = None  # default: vmlinuz next to the ISO (build.sh puts it there)
    initrd: Path | None = None


def live_kernel_options(grub_cfg: Path = GRUB_CFG) -> str:
    """The kernel options the ISO's GRUB menu uses, so direct boots match real ones."""
    match = re.search(r'^set live_opts="([^"]*)"', grub_cfg.read_text(), re.MULTILINE)
    if not match:
        raise QemuError(f"{grub_cfg} has no 'set live_opts=...' line")
    return match.group(1)


def use_kvm() -> bool:
    # KVM guests hang on these machines; TCG unless explicitly asked for.
    return os.environ.get("RECOVERY_QEMU_KVM") == "1"


class VM:
    def __init__(self, machine: Machine, medium: BootMedium, workdir: Path,
                 disks: Mapping[str, Path] | None = None, *, timeout: float = 600,
                 log_name: str = "serial.log",
                 guestfwd: Mapping[str, int] | None = None, mac: str = "",
                 silent_nic: str = "") -> None:
        """`guestfwd`: {"10.0.2.100:445": host port}: the guest gets an Intel e1000e NIC on
        user-mode networking with restrict=on (DHCP from QEMU, nothing else reachable) and
        reaches only these servers, all on the host's 127.0.0.1. `mac`: the NIC's address
        (QEMU's default when empty): two guests at once are two PCs, two addresses.
        `silent_nic`: the MAC of a second e1000e whose cable goes to a network where
        nothing answers (a QEMU hub with no other port): link up, no DHCP server."""
        self.guestfwd = dict(guestfwd) if guestfwd is not None else None
        self.mac = mac
        self.silent_nic = silent_nic
        self.machine = machine
        self.medium = medium
        self.workdir = Path(workdir)
        self.disk_files = dict(disks or {})
        self.timeout = timeout
        self.log_path = self.workdir / log_name
        self._socket_path = self.workdir / f"serial-{uuid.uuid4().hex[:8]}.sock"
        self._monitor_path = self.workdir / f"monitor-{uuid.uuid4().hex[:8]}.sock"
        self._scratch: list[Path] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._output = bytearray()
        self._changed = threading.Condition()
        self._cursor = 0
        self._deadline = 0.0
        self.started_at = 0.0

    # ----- life cycle -----
    def __enter__(self) -> VM:
        if shutil.which(QEMU) is None:
            raise QemuError(f"{QEMU} is not installed: apt-get install qemu-system-x86")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = self.command_line()
        (self.workdir / "qemu-command.txt").write_text(shlex.join(argv) + "\n")
        stderr = open(self.workdir / "qemu-stderr.log", "wb")
        self.started_at = time.monotonic()
        self._deadline = self.started_at + self.timeout
        self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr,
                                         stderr=stderr, start_new_session=True)
        stderr.close()
        try:
            self._connect()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop()

    def _connect(self) -> None:
        assert self._process is not None
        for _ in range(200):
            if self._process.poll() is not None:
                raise QemuError(f"QEMU exited at start (status {self._process.returncode}): "
                                f"{self._stderr_tail()}")
            try:
                connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                connection.connect(str(self._socket_path))
            except OSError:
                connection.close()
                time.sleep(0.05)
                continue
            self._connection = connection
            self._reader = threading.Thread(target=self._read_serial, daemon=True,
                                            name=f"serial-{self.machine.name}")
            self._reader.start()
            return
        raise QemuError(f"QEMU did not open its serial socket {self._socket_path}")

    def _read_serial(self) -> None:
        assert self._connection is not None
        with open(self.log_path, "wb") as log:
            while True:
                try:
                    block = self._connection.recv(65536)
                except OSError:
                    block = b""
                if not block:
                    break
                log.write(block)
                log.flush()
                with self._changed:
                    self._output.extend(block)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            # QEMU runs in its own session: the group holds nothing else we started.
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._connection is not None:
            self._connection.close()
        if self._reader is not None:
            self._reader.join(timeout=10)
        for path in [*self._scratch, self._socket_path, self._monitor_path]:
            path.unlink(missing_ok=True)
        self._scratch.clear()

    # ----- the serial console -----
    @property
    def output(self) -> str:
        with self._changed:
            return self._output.decode(errors="replace")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def _remaining(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        return min(left, timeout) if timeout is not None else left

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float | None = None
                 ) -> re.Match[str]:
        """The first match of `pattern` after the previous match; raises SerialTimeout."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        end = time.monotonic() + self._remaining(timeout)
        with self._changed:
            while True:
                text = self._output.decode(errors="replace")
                match = regex.search(text, self._cursor)
                if match:
                    self._cursor = match.end()
                    return match
                left = end - time.monotonic()
                if left <= 0 or self._finished():
                    break
                self._changed.wait(min(left, 1.0))
        state = "QEMU exited" if self._finished() else f"not seen within {self.elapsed:.0f} s"
        raise SerialTimeout(f"{self.machine.name}: {regex.pattern!r} {state}; "
                            f"serial log {self.log_path}:\n{self.tail()}")

    def _finished(self) -> bool:
        return self._process is None or self._process.poll() is not None

    def send(self, text: str) -> None:
        if self._connection is None:
            raise QemuError("the VM is not running")
        self._connection.sendall(text.encode())

    def shell(self, command: str, timeout: float | None = 120, check: bool = True) -> str:
        """Run `command` in the guest's shell on the serial console; return its output.

        The markers are computed by the guest ($((...))), so the echo of the typed line
        never matches them.
        """
        token = uuid.uuid4().hex[:8]
        self.send(f"echo {token}-B-$((1+1)); {command}; echo {token}-E-$((0+$?))\r")
        self.wait_for(re.escape(f"{token}-B-2"), timeout)
        start = self._cursor
        match = self.wait_for(re.escape(f"{token}-E-") + r"(\d+)", timeout)
        body = self.output[start:match.start()].replace("\r\n", "\n").strip("\r\n")
        if check and match.group(1) != "0":
            raise GuestCommandError(f"{command!r} exited {match.group(1)} in the guest:\n{body}")
        return body

    def wait_exit(self, timeout: float | None = None) -> int:
        """Wait for the guest to power off (QEMU exits); returns QEMU's exit status."""
        assert self._process is not None
        try:
            status = self._process.wait(timeout=max(self._remaining(timeout), 0))
        except subprocess.TimeoutExpired as exc:
            raise SerialTimeout(f"{self.machine.name}: did not power off within "
                                f"{self.elapsed:.0f} s; serial log {self.log_path}:\n"
                                f"{self.tail()}") from exc
        if self._reader is not None:
            self._reader.join(timeout=10)
        return status

    # ----- the screen and keyboard (QEMU's human monitor) -----
    def monitor(self, command: str, timeout: float = 30) -> str:
        """Run one human-monitor command (sendkey, screendump...); returns its output."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(self._monitor_path))
            reply = bytearray()

            def until_prompt() -> bytes:
                while not reply.endswith(b"(qemu) "):
                    block = connection.recv(4096)
                    if not block:
                        raise QemuError(f"the QEMU monitor closed during {command!r}")
                    reply.extend(block)
                text = bytes(reply)
                reply.clear()
                return text
            until_prompt()  # the banner
            connection.sendall(command.encode() + b"\n")
            text = until_prompt().decode(errors="replace")
        # The monitor echoes the command line with terminal escapes; keep what follows it.
        body = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", "")
        return body.split("\n", 1)[1].rsplit("(qemu) ", 1)[0] if "\n" in body else ""

    def screendump(self, path: Path) -> Path:
        """The VGA screen (tty1) as a PNG file (QEMU 7.2 writes PPM; converted here)."""
        ppm = path.with_suffix(".ppm")
        output = self.monitor(f"screendump {ppm}")
        if not ppm.is_file():
            raise QemuError(f"screendump did not write {ppm}: {output.strip()}")
        path.write_bytes(ppm_to_png(ppm.read_bytes()))
        ppm.unlink()
        return path

    def keys(self, *names: str) -> None:
        """Press keys on the PC's keyboard (QEMU key names: ret, esc, down, spc, a, ...)."""
        for name in names:
            self.monitor(f"sendkey {name}")

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.output.replace("\r", "").splitlines()[-lines:])

    def _stderr_tail(self) -> str:
        path = self.workdir / "qemu-stderr.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # ----- the command line -----
    def command_line(self) -> list[str]:
        machine = self.machine
        secure = machine.firmware == "uefi-secureboot"
        argv = [QEMU, "-nodefaults", "-no-user-config", "-display", "none", "-vga", "std",
                "-machine", "q35,smm=on" if secure else "q35",
                "-accel", "kvm" if use_kvm() else "tcg", "-cpu", machine.cpu,
                "-m", str(machine.memory_mib), "-smp", str(machine.cpus), "-no-reboot",
                "-chardev", f"socket,id=serial0,path={self._socket_path},server=on,wait=on",
                "-serial", "chardev:serial0",
                "-monitor", f"unix:{self._monitor_path},server=on,wait=off"]
        argv += self._firmware_args()
        if self.medium.mode == "usb" or any(disk.bus == "usb" for disk in machine.disks):
            argv += ["-device", "usb-ehci,id=ehci"]
        argv += self._medium_args()
        sata_port = 1  # port 0 holds the CD
        for index, disk in enumerate(machine.disks):
            argv += self._disk_args(index, disk, sata_port)
            sata_port += disk.bus == "sata"
        if self.guestfwd is not None:
            # `cmd:` spawns a relay per guest connection. The `tcp:` chardev form is ONE
            # stream, opened when QEMU starts and shared by every guest connection: smbd
            # closes a connection that sends nothing for 60 s, long before the guest has
            # booted, and mount.cifs then met a dead stream (error 112, EHOSTDOWN).
            rules = "".join(f",guestfwd=tcp:{guest}-cmd:socat STDIO TCP:127.0.0.1:{port}"
                            for guest, port in self.guestfwd.items())
            mac = f",mac={self.mac}" if self.mac else ""
            argv += ["-netdev", f"user,id=net0,restrict=on{rules}",
                     "-device", f"e1000e,netdev=net0{mac}"]
        if self.silent_nic:
            argv += ["-netdev", "hubport,id=silent,hubid=1",
                     "-device", f"e1000e,netdev=silent,mac={self.silent_nic}"]
        return argv

    def _firmware_args(self) -> list[str]:
        firmware = self.machine.firmware
        if firmware == "bios":
            return []
        code, template = (("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd")
                          if firmware == "uefi-secureboot"
                          else ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"))
        # A fresh copy of the variable store for every boot: no state leaks between tests.
        variables = self.workdir / f"ovmf-vars-{uuid.uuid4().hex[:8]}.fd"
        shutil.copyfile(OVMF_DIR / template, variables)
        self._scratch.append(variables)
        args = ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_DIR / code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
        if firmware == "uefi-secureboot":
            args = ["-global", "driver=cfi.pflash01,property=secure,value=on", *args]
        return args

    def _medium_args(self) -> list[str]:
        medium = self.medium
        iso = medium.iso.resolve()
        if medium.mode == "usb":
            return ["-drive", f"if=none,id=stick,format=raw,readonly=on,file={iso}",
                    "-device", "usb-storage,bus=ehci.0,drive=stick,bootindex=0,"
                    "serial=RECOVERY-STICK,removable=on"]
        # -kernel claims boot index 0 itself.
        boot = "" if medium.mode == "kernel" else ",bootindex=0"
        args = ["-drive", f"if=none,id=cd,media=cdrom,format=raw,readonly=on,file={iso}",
                "-device", f"ide-cd,bus=ide.0,drive=cd{boot}"]
        if medium.mode == "kernel":
            kernel = medium.kernel or iso.parent / "vmlinuz"
            initrd = medium.initrd or iso.parent / "initrd.img"
            options = f"{live_kernel_options()} {medium.append}".strip()
            args += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", options]
        return args

    def _disk_file(self, disk: DiskSpec) -> Path:
        path = self.disk_files.get(disk.name)
        if path is None:
            path = self.workdir / f"{self.machine.name}-{disk.name}.img"
            with open(path, "wb") as handle:
                handle.truncate(disk.size)
            self.disk_files[disk.name] = path
        return path.resolve()

    def _disk_args(self, index: int, disk: DiskSpec, sata_port: int) -> list[str]:
        node = f"disk{index}"
        image = self._disk_file(disk)
        if disk.fault:
            config = self.workdir / f"blkdebug-{node}.conf"
            event = "write_aio" if disk.fault == "write-error" else "read_aio"
            # One rule per bad sector: a request touching it fails (a dying disk's sectors).
            rules = [f'sector = "{n}"\n' for n in disk.bad_sectors] or [""]
            config.write_text("".join(f'[inject-error]\nevent = "{event}"\nerrno = "5"\n'
                                      f'once = "off"\n{rule}' for rule in rules))
            drive = (f"if=none,id={node},format=raw,file.driver=blkdebug,"
                     f"file.config={config},file.image.filename={image}")
        else:
            drive = f"if=none,id={node},format=raw,file={image}"
        serial = f"serial={disk.serial}"
        device = {
            "nvme": f"nvme,drive={node},{serial}",
            "sata": f"ide-hd,bus=ide.{sata_port},drive={node},{serial}"
                    + (f",model={disk.model}" if disk.model else ""),
            "virtio": f"virtio-blk-pci,drive={node},{serial}",
            "usb": f"usb-storage,bus=ehci.0,drive={node},{serial},removable=on",
        }[disk.bus]
        return ["-drive", drive, "-device", device]


def ppm_to_png(ppm: bytes) -> bytes:
    """A binary PPM (P6, 8 bits) as a PNG: what QEMU's screendump writes, for the README."""
    fields = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", ppm)
    if fields is None or fields.group(3) != b"255":
        raise QemuError("screendump: not an 8-bit binary PPM")
    width, height = int(fields.group(1)), int(fields.group(2))
    pixels = ppm[fields.end():]
    stride = width * 3
    rows = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
