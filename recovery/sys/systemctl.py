"""systemctl: rebooting or powering off the live system (the TUI's keys, the unattended
mode after a job that passed); restarting a service (systemd-networkd after a typed
address). systemctl talks to systemd over its private socket: no D-Bus needed, and the
live image has none."""

from __future__ import annotations

from recovery.sys.run import run


def power(action: str, wait: bool = True) -> None:
    """Reboot or power off. `wait=False` queues it and returns (the caller still has lines
    to write); a refusal then is not an error, the PC simply stays on."""
    if action not in ("reboot", "poweroff"):
        raise ValueError(f"not a power action: {action}")
    if wait:
        run(["systemctl", action])
    else:
        run(["systemctl", "--no-block", action], check=False)


def restart(unit: str) -> None:
    run(["systemctl", "restart", unit])
