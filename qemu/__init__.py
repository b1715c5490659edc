"""QEMU harness: boot the recovery live image on described machines, watch the serial console.

Machines are small YAML files in qemu/machines/ (see machine.py); `VM` (vm.py) is a context
manager that starts QEMU, captures the serial console to a log, and always kills QEMU and
removes its scratch files. `python3 -m qemu --help` runs the same from a shell.
"""

from qemu.machine import DiskSpec, Machine, load_machine, machine_names
from qemu.vm import VM, BootMedium, GuestCommandError, QemuError, SerialTimeout

__all__ = ["VM", "BootMedium", "DiskSpec", "GuestCommandError", "Machine", "QemuError",
           "SerialTimeout", "load_machine", "machine_names"]
