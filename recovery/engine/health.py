"""Every disk's SMART health, read in parallel and bounded in time.

smartctl answers in well under a second from a healthy disk, but a dying disk or a hung USB
bridge can block it in the kernel, where not even a kill ends it. So each disk is asked on
its own daemon thread and the caller waits at most `timeout` seconds for all of them
together: a disk that has not answered by then is `unknown` ("did not answer"), the listing
goes on, and the stuck thread cannot keep the program from exiting.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from recovery.model.disk import Disk
from recovery.model.health import Health
from recovery.sys import smartctl

Reader = Callable[[Disk, float], Health]

LIST_TIMEOUT = 12.0  # seconds for a whole listing; each smartctl call has its own limit


def disk_health(disk: Disk, timeout: float = smartctl.DEFAULT_TIMEOUT) -> Health:
    """One disk's health. An image file is no drive: it is not asked."""
    if disk.bus == "file":
        return Health.unknown("an image file has no SMART data")
    return smartctl.read_health(disk.node, disk.bus, timeout)


def with_health(disks: list[Disk], timeout: float = LIST_TIMEOUT,
                reader: Reader | None = None) -> list[Disk]:
    """`disks` with their `health` filled in, in the same order, within about `timeout`."""
    read = reader or disk_health
    results: dict[int, Health] = {}
    lock = threading.Lock()

    def ask(index: int, disk: Disk) -> None:
        health = read(disk, min(timeout, smartctl.DEFAULT_TIMEOUT))
        with lock:
            results[index] = health

    threads = [threading.Thread(target=ask, args=(i, d), daemon=True,
                                name=f"health-{d.node.name}") for i, d in enumerate(disks)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        found = dict(results)
    late = Health.unknown(f"the disk did not answer within {timeout:.0f} s (a hung USB "
                          "bridge or a dying disk)")
    return [dataclasses.replace(d, health=found.get(i, late)) for i, d in enumerate(disks)]
