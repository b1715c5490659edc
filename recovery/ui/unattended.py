"""Unattended mode: one engine job from the kernel command line, for CI and mass restores.

    recovery.run=capture|restore|verify|rollback|tui|shell
    recovery.store=LABEL:path | /dev/NODE:path   file system holding the store, directory in it
    recovery.store=smb://...|nfs://...|ssh://...  a network store (docs/network-stores.md);
    recovery.credentials=LABEL:path              its credentials file, e.g. on the USB stick
    recovery.image=NAME  recovery.source=SERIAL|ID  recovery.target=SERIAL|ID  recovery.yes=1
    recovery.rescue=1                     (capture: a failing disk, `capture --rescue`; a
                                          capture with unreadable areas ends in FAIL, exit 14)
    recovery.volume=SERIAL|ID|/dev/NODE  recovery.point=ID  recovery.partition=N
    recovery.hive=SYSTEM,SOFTWARE,...     (rollback: `recovery restore-points rollback`; with
                                          recovery.store= the undo record is copied there too)
    restore: recovery.layout=fit|same  recovery.system-size=SIZE  recovery.plan-only=1
             recovery.delta=1  recovery.allow-failing-target=1
    capture: recovery.partitions=ROLE|N,...  recovery.read-all=1  recovery.retry-passes=N
             recovery.rescue-time=SECONDS  recovery.slow-read=SECONDS
    (each is the CLI flag of the same name: PASSED_OPTIONS below)

The live image's recovery-unattended.service runs `python3 -m recovery.ui.unattended
--console /dev/ttyS0 --console /dev/tty1 --poweroff`. It mounts the store, runs the CLI job
with --json and writes one machine-readable line to every console:

    RECOVERY-RESULT: PASS {"job": "restore", "exit_status": 0, "result": {...}}
    RECOVERY-RESULT: FAIL {"job": "restore", "exit_status": 11, "result": {"error": ...}}

then powers the PC off after PASS (after FAIL it stays on, showing why). `tui` and `shell`
are not jobs: the consoles handle them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

from recovery.errors import NetworkError, RecoveryError, SourceError, UsageError
from recovery.model.disk import Disk, DiskPartition
from recovery.model.netstore import is_url, parse_url
from recovery.units import parse_size

JOBS = ("capture", "restore", "verify", "rollback")
INTERACTIVE = ("tui", "shell")
RESULT_PREFIX = "RECOVERY-RESULT:"
STORE_WAIT_SECONDS = 60.0
NETWORK_WAIT_SECONDS = 60.0
SWITCH = "switch"  # recovery.NAME=1 gives the bare flag; 0 or no leaves it out
YES_WORDS = ("1", "yes", "true")
NO_WORDS = ("0", "no", "false")

# Options passed on as the job's CLI flag of the same name (`recovery.system-size=200G` ->
# `--system-size 200G`), with how the value is checked before anything runs. The job's
# identity (store, image, source, target, yes) has its own fields above.
PASSED_OPTIONS: dict[str, dict[str, str | tuple[str, ...]]] = {
    "restore": {"layout": ("fit", "same"), "system-size": "size", "plan-only": SWITCH,
                "delta": SWITCH, "allow-failing-target": SWITCH},
    "capture": {"partitions": "text", "read-all": SWITCH, "retry-passes": "count",
                "rescue-time": "seconds", "slow-read": "seconds"},
}


@dataclass(frozen=True)
class StoreSpec:
    """recovery.store= on the kernel command line: a file system (by label or device node)
    and a path in it. (A store found on a drive is recovery.engine.storescan.StoreLocation.)"""

    path: str
    label: str = ""
    device: Path | None = None
    url: str = ""  # a network store: smb://, nfs://, ssh:// (never holds a secret)

    def describe(self) -> str:
        if self.url:
            return self.url
        where = str(self.device) if self.device else f"the file system labelled '{self.label}'"
        return f"{self.path} on {where}"


@dataclass(frozen=True)
class UnattendedJob:
    run: str
    store: StoreSpec | None = None
    credentials: StoreSpec | None = None  # the credentials file of a network store
    image: str = ""
    source: str = ""
    target: str = ""
    yes: bool = False
    volume: str = ""
    point: str = ""
    partition: str = ""
    hive: str = ""
    rescue: bool = False
    flags: tuple[str, ...] = ()  # the job's other CLI flags, from PASSED_OPTIONS

    @property
    def is_engine_job(self) -> bool:
        return self.run in JOBS


def parse_store(value: str) -> StoreSpec:
    if is_url(value):
        parse_url(value)  # a malformed URL or one holding a password stops here
        return StoreSpec(path="", url=value)
    where, sep, path = value.partition(":")
    if not sep or not where:
        raise UsageError(f"recovery.store={value} names no file system.",
                         "Write recovery.store=LABEL:path or recovery.store=/dev/sdb1:path.")
    path = "/" + path.strip("/")
    if where.startswith("/dev/"):
        return StoreSpec(path=path, device=Path(where))
    return StoreSpec(path=path, label=where.removeprefix("LABEL="))


def parse_cmdline(cmdline: str) -> UnattendedJob | None:
    """The job named on a kernel command line, or None when it names none."""
    options: dict[str, str] = {}
    for word in shlex.split(cmdline):
        key, _, value = word.partition("=")
        if key.startswith("recovery."):
            options[key.removeprefix("recovery.")] = value
    if "run" not in options:
        return None
    run = options["run"]
    if run not in JOBS + INTERACTIVE:
        raise UsageError(f"recovery.run={run} is not a job.",
                         f"Use one of {', '.join(JOBS + INTERACTIVE)}.")
    job = UnattendedJob(
        run=run, store=parse_store(options["store"]) if options.get("store") else None,
        credentials=(_parse_file(options["credentials"]) if options.get("credentials")
                     else None),
        image=options.get("image", ""), source=options.get("source", ""),
        target=options.get("target", ""), yes=options.get("yes", "") in YES_WORDS,
        volume=options.get("volume", ""), point=options.get("point", ""),
        partition=options.get("partition", ""), hive=options.get("hive", ""),
        rescue=options.get("rescue", "") in YES_WORDS, flags=passed_flags(run, options))
    _check_complete(job)
    return job


def passed_flags(run: str, options: dict[str, str]) -> tuple[str, ...]:
    """The CLI flags for the job's PASSED_OPTIONS, each value checked; a bad one is refused
    before the store is even looked for, naming the kernel option."""
    flags: list[str] = []
    for name, kind in PASSED_OPTIONS.get(run, {}).items():
        if name not in options:
            continue
        value = options[name]
        if kind == SWITCH:
            if value not in YES_WORDS + NO_WORDS:
                raise _bad_option(name, value, "1 (or 0)")
            flags += [f"--{name}"] if value in YES_WORDS else []
            continue
        if not _valid(kind, value):
            wanted = {"size": "a size such as 200G or 500GB", "count": "a whole number",
                      "seconds": "a number of seconds", "text": "a value"}
            raise _bad_option(name, value, wanted.get(str(kind), " or ".join(kind)))
        flags += [f"--{name}", value]
    return tuple(flags)


def _valid(kind: str | tuple[str, ...], value: str) -> bool:
    if isinstance(kind, tuple):
        return value in kind
    checks: dict[str, Callable[[str], object]] = {"size": parse_size, "count": int,
                                                  "seconds": float, "text": str}
    try:
        checks[kind](value)
    except ValueError:
        return False
    return bool(value)


def _bad_option(name: str, value: str, wanted: str) -> UsageError:
    return UsageError(f"recovery.{name}={value} on the kernel command line is not valid: it "
                      f"takes {wanted}.",
                      "Edit the boot entry (press e in the boot menu) and correct it.")


def _parse_file(value: str) -> StoreSpec:
    location = parse_store(value)
    if location.url or location.path == "/":
        raise UsageError(f"recovery.credentials={value} names no file on a file system.",
                         "Write recovery.credentials=LABEL:path/to/file, e.g. "
                         "recovery.credentials=STICK:/nas.cred.")
    return location


def _check_complete(job: UnattendedJob) -> None:
    needed = {"capture": ("store", "source"), "restore": ("store", "image", "target"),
              "verify": ("store", "image"), "rollback": ("volume", "point")}.get(job.run, ())
    missing = [name for name in needed if not getattr(job, name)]
    if missing:
        raise UsageError(
            f"recovery.run={job.run} needs " + ", ".join(f"recovery.{m}=" for m in missing)
            + " on the kernel command line.",
            "Edit the boot entry (press e in the boot menu) and add the missing options.")


def cli_arguments(job: UnattendedJob, store_dir: Path | str | None,
                  resolve: Callable[[str], str], credentials: Path | None = None
                  ) -> list[str]:
    """The `recovery` command line for the job; `resolve` turns a serial or id into a node.
    `store_dir` is a mounted directory or a store URL (the CLI mounts it)."""
    if job.run == "rollback":  # its undo copy goes to a store on a drive only
        return rollback_arguments(job, store_dir if isinstance(store_dir, Path) else None,
                                  resolve)
    store = ["--store", str(store_dir)]
    if credentials is not None:
        store += ["--credentials", str(credentials)]
    if job.run == "capture":
        name = ["--name", job.image] if job.image else []
        rescue = ["--rescue"] if job.rescue else []
        return ["capture", resolve(job.source), *store, *name, *rescue, *job.flags, "--json"]
    if job.run == "restore":
        yes = ["--yes"] if job.yes else []
        return ["restore", *store, job.image, resolve(job.target), *yes, *job.flags, "--json"]
    target = ["--target", resolve(job.target)] if job.target else []
    return ["verify", *store, job.image, *target, "--json"]


def rollback_arguments(job: UnattendedJob, store_dir: Path | None,
                       resolve: Callable[[str], str]) -> list[str]:
    # A /dev path may name the Windows partition itself, which is no disk to look up.
    volume = job.volume if job.volume.startswith("/dev/") else resolve(job.volume)
    argv = ["restore-points", "rollback", volume, job.point]
    argv += ["--partition", job.partition] if job.partition else []
    argv += ["--hive", job.hive] if job.hive else []
    argv += ["--undo-copy", str(store_dir / "undo")] if store_dir is not None else []
    return [*argv, *(["--yes"] if job.yes else []), "--json"]


def resolve_disk_node(identifier: str) -> str:
    """A device node for a serial, stable id, WWN or /dev path, as `recovery disks` shows."""
    from recovery.engine.disks import find_disk, list_disks  # udev only where needed

    return str(find_disk(identifier, list_disks()).node)


def find_store_partition(location: StoreSpec, disks: Sequence[Disk]
                         ) -> DiskPartition | None:
    for disk in disks:
        for partition in disk.partitions:
            if location.device is not None and partition.node == location.device:
                return partition
            if location.label and partition.fs_label == location.label:
                return partition
    return None


def wait_for_store(location: StoreSpec, timeout: float | None = None) -> DiskPartition:
    """The store's partition; USB disks can appear seconds after boot, so keep looking."""
    from recovery.engine.disks import list_disks
    from recovery.sys.udev import settle

    deadline = time.monotonic() + (STORE_WAIT_SECONDS if timeout is None else timeout)
    while True:
        settle()
        disks = list_disks()
        partition = find_store_partition(location, disks)
        if partition is not None and partition.node is not None:
            return partition
        if time.monotonic() > deadline:
            seen = "; ".join(f"{p.node} '{p.fs_label}' ({p.fs_type})"
                             for d in disks for p in d.partitions) or "none"
            raise SourceError(f"The image store {location.describe()} was not found. "
                              f"Partitions here: {seen}.",
                              "Plug in the store disk, check recovery.store= on the kernel "
                              "command line, and boot again.")
        time.sleep(2)


@contextlib.contextmanager
def mounted_store(location: StoreSpec) -> Iterator[Path]:
    from recovery.sys.mount import mounted

    partition = wait_for_store(location)
    assert partition.node is not None
    with tempfile.TemporaryDirectory(prefix="recovery-store-") as scratch, \
            mounted(partition.node, partition.fs_type, Path(scratch)) as point:
        yield point / location.path.lstrip("/")


def wait_for_network(progress: TextIO, timeout: float = NETWORK_WAIT_SECONDS) -> None:
    """A network store needs an address: DHCP may still be running (nothing waits for the
    network at boot). NetworkError naming every port's state when none comes."""
    from recovery.sys.network import update_resolv_conf, wired_links

    deadline = time.monotonic() + timeout
    while True:
        links = wired_links()
        if any(link.carrier and link.addresses for link in links):
            update_resolv_conf()
            progress.write("Network: " + "; ".join(link.describe() for link in links) + "\n")
            return
        if time.monotonic() > deadline:
            ports = "; ".join(link.describe() for link in links) or "no Ethernet port found"
            raise NetworkError(f"No network for the store: {ports}.",
                               "Plug in the network cable (and check that the switch port "
                               "is live and a DHCP server answers), then boot again.")
        time.sleep(1)


class _Tee(io.TextIOBase):
    """Progress text to the journal and to every console the technician may be watching."""

    def __init__(self, streams: Sequence[TextIO]) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            with contextlib.suppress(OSError, ValueError):
                stream.write(text)
                stream.flush()
        return len(text)


def run_cli(argv: list[str], progress: TextIO) -> tuple[int, object]:
    """Run `recovery ARGV` in this process; its exit status and its JSON document."""
    from recovery.ui.cli import main as cli_main

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(progress):
        try:
            status = cli_main(argv)
        except SystemExit as exc:  # argparse refusing the arguments
            status = exc.code if isinstance(exc.code, int) else 2
    text = captured.getvalue().strip()
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, {"output": text[-4000:]}


def run_job(job: UnattendedJob, progress: TextIO) -> dict[str, object]:
    """Mount the store, run the job; the report is what the RECOVERY-RESULT line carries."""
    report: dict[str, object] = {"job": job.run, "image": job.image}
    started = time.monotonic()
    try:
        # A rollback needs no store; with one, its undo record is copied there.
        with contextlib.ExitStack() as stack:
            store_dir: Path | str | None = None
            credentials = None
            if job.store is not None and job.store.url:
                store_dir = job.store.url
                wait_for_network(progress)
            elif job.store is not None:
                store_dir = stack.enter_context(mounted_store(job.store))
            if job.credentials is not None:
                credentials = stack.enter_context(mounted_store(job.credentials))
            argv = cli_arguments(job, store_dir, resolve_disk_node, credentials)
            report["command"] = ["recovery", *argv]
            status, result = run_cli(argv, progress)
        report.update(exit_status=status, result=result)
    except RecoveryError as error:
        report.update(exit_status=error.code, result={"error": error.as_dict()})
    except Exception as error:  # a bug must still end in a FAIL line, not a silent hang
        report.update(exit_status=1, result={"error": {
            "code": 1, "kind": "crash", "title": f"{type(error).__name__}: {error}",
            "action": "Report this with the serial log."}})
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def result_line(report: dict[str, object]) -> str:
    verdict = "PASS" if report.get("exit_status") == 0 else "FAIL"
    return f"{RESULT_PREFIX} {verdict} {json.dumps(report, sort_keys=True, default=str)}"


def _open_consoles(paths: Sequence[Path]) -> list[TextIO]:
    consoles: list[TextIO] = [sys.stdout]
    for path in paths:
        # A PC without a serial port has /dev/ttyS0 but refuses to open it: skip it.
        with contextlib.suppress(OSError):
            consoles.append(open(path, "w", encoding="utf-8"))  # noqa: SIM115
    return consoles


def _power_off() -> None:
    from recovery.sys import systemctl

    systemctl.power("poweroff", wait=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m recovery.ui.unattended")
    parser.add_argument("--cmdline", type=Path, default=Path("/proc/cmdline"))
    parser.add_argument("--console", type=Path, action="append", default=[])
    parser.add_argument("--poweroff", action="store_true", help="power off after a job")
    args = parser.parse_args(argv)
    consoles = _open_consoles(args.console)
    out = cast(TextIO, _Tee(consoles))
    try:
        job = parse_cmdline(args.cmdline.read_text())
    except UsageError as error:
        job = None
        out.write(result_line({"job": "", "exit_status": error.code,
                               "result": {"error": error.as_dict()}}) + "\n")
        return error.code
    if job is None or not job.is_engine_job:
        return 0
    # The CLI's job lock names this service to the consoles (it has no terminal).
    os.environ.setdefault("RECOVERY_CONSOLE", "the unattended service")
    out.write(f"recovery: unattended {job.run} starting\n")
    report = run_job(job, out)
    out.write("\n" + result_line(report) + "\n")
    status = report["exit_status"]
    # A failed PC stays on with the reason on its screen; a finished one switches off.
    if args.poweroff and status == 0:
        _power_off()
    return status if isinstance(status, int) else 1


if __name__ == "__main__":
    sys.exit(main())
