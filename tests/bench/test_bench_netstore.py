"""Capture to and restore from each kind of network share against `cat` of the same bytes to
and from the same mount, in the same guest (issue 13: target >= 0.9x cat's throughput).

Run with `flock /work/qemu.lock python3 -m pytest -m bench -s tests/bench/test_bench_netstore.py`
(it boots the live image in QEMU: one boot, the three servers of tests/e2e/test_netstore.py
on the host's 127.0.0.1). The 2 GiB test disk gets a 256 MiB incompressible file on its
Windows volume (the test disk's own files compress to 9 MB: the jobs' fixed costs alone
would be measured). For each of smb, nfs and ssh: a capture of the disk into a new store
on the share (so every chunk is written), then a restore of it onto the disk; the stored
bytes B are the image's chunk files. The baseline is a script on the credentials stick that
mounts the share the same way (recovery.store.remote) and times `cat` of B bytes from RAM
to a file on the share (then fsync: sync FILE) and, page caches dropped, from that file to
/dev/null. Every command runs under jobstat (CPU seconds of the process, the kernel threads
and the whole guest: where the time goes). Throughput is B / seconds; the capture also
reads the disk, hashes and compresses, the restore also decompresses, writes the disk and
reads it back. Two times per job: the job's own (its JSON `seconds`: plan, work, check;
inside the mount, as cat's time is) and the command's wall time (Python's start, the mount
and unmount too). The ratios go to docs/benchmarks.md with the host's load; nothing is
asserted about time. BENCH_KINDS="nfs" (a list of smb, nfs, ssh) runs only those and prints
without writing, unless BENCH_WRITE=1. Each command also runs under threadstat
(guest_threadstat.py: each thread's CPU, sampled stacks) with each vCPU's busy share
sampled every 0.5 s, printed. BENCH_ALT=REF: an A/B in one boot (below); BENCH_COMPUTE=0
skips the per-step rates and the local store; BENCH_CPU sets QEMU's -cpu.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qemu import VM, BootMedium, load_machine
from tests.e2e.conftest import BOOT_TIMEOUT, LiveImage, live_image  # noqa: F401
from tests.e2e.test_netstore import NAS, nas_credentials_stick
from tests.e2e.windisk import make_gpt_disk
from tests.fsbuild import BuiltVolume, fill_ntfs
from tests.netstore.servers import (
    TEST_USER,
    make_ganesha_server,
    make_samba_server,
    make_ssh_server,
    served,
)

ROOT = Path(__file__).resolve().parents[2]
CPURATE = Path(__file__).with_name("guest_cpurate.py")
THREADSTAT = Path(__file__).with_name("guest_threadstat.py")
BEGIN, END = "<!-- netstore bench: begin -->", "<!-- netstore bench: end -->"
GiB = 1 << 30
BIG = 256 << 20
# On the credentials stick: where the guest's CPU time goes during one command. Our process
# (and its children: mount helpers, ssh) from getrusage, the kernel threads (cifsd,
# kworkers, nfsiod: the PF_KTHREAD flag in /proc/PID/stat) and the whole guest's
# busy/idle/iowait from /proc/stat, in CPU seconds over both vCPUs; plus the share's line
# in /proc/mounts while the command runs (rsize/wsize) and its page-cache flushes.
JOBSTAT = """\
import json, os, resource, subprocess, sys, threading, time
HZ = os.sysconf("SC_CLK_TCK")
def guest():
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq = map(int, stat.readline().split()[1:8])
    return {"busy": user + nice + system + irq + softirq, "idle": idle, "iowait": iowait}
def kthreads():
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[6]) & 0x200000:
            total += int(fields[11]) + int(fields[12])
    return total
def vcpus():
    with open("/proc/stat") as stat:
        rows = [line.split() for line in stat if line.startswith("cpu") and line[3] != " "]
    return [sum(map(int, row[1:4] + row[6:8])) for row in rows]
def measure(command, **kwargs):
    seen, done, busy = [], threading.Event(), []
    def watch():
        last, then = vcpus(), time.monotonic()
        while not done.wait(0.5):
            now, at = vcpus(), time.monotonic()
            # each vCPU's busy share of this half second
            busy.append([round((b - a) / HZ / (at - then), 2) for a, b in zip(last, now)])
            last, then = now, at
            with open("/proc/mounts") as mounts:
                seen.extend(line.strip() for line in mounts
                            if (" cifs " in line or " nfs" in line) and line.strip() not in seen)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    before, kbefore, rbefore = guest(), kthreads(), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(command, check=True, **kwargs)
    wall = time.monotonic() - start
    after, kafter, rafter = guest(), kthreads(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done.set()
    watcher.join()
    return {"wall": round(wall, 2),
            "ours": round(rafter.ru_utime + rafter.ru_stime
                          - rbefore.ru_utime - rbefore.ru_stime, 2),
            "ours_sys": round(rafter.ru_stime - rbefore.ru_stime, 2),
            "kthreads": round((kafter - kbefore) / HZ, 2),
            **{key: round((after[key] - before[key]) / HZ, 2) for key in after},
            "mounts": seen[:2], "vcpu_busy": busy}
if __name__ == "__main__":
    with open("/tmp/job.json", "w") as out:
        stats = measure(sys.argv[1:], stdout=out, stderr=subprocess.DEVNULL,
                        stdin=subprocess.DEVNULL)
    print("JOBSTAT " + json.dumps(stats))
"""
CAT_SCRIPT = """\
import json, subprocess, sys
from pathlib import Path
sys.path.insert(0, "/mnt/creds")
from jobstat import measure
from recovery.model.netstore import Credentials, parse_url, read_credentials
from recovery.store.remote import mounted_store
url, creds, size = parse_url(sys.argv[1]), sys.argv[2], int(sys.argv[3])
credentials = read_credentials(Path(creds)) if creds != "-" else Credentials()
with mounted_store(url, credentials) as store:
    store.path.mkdir(parents=True, exist_ok=True)
    blob = store.path / "cat-blob"
    # sync FILE: fsync, as the jobs fsync their chunk files (durable on the server: SMB
    # flush, NFS commit); `sync -f` (syncfs) sends no SMB flush.
    write = measure(f"cat /tmp/blob > {blob} && sync {blob}", shell=True)
    Path("/proc/sys/vm/drop_caches").write_text("3")
    read = measure(f"cat {blob} > /dev/null", shell=True)
    assert blob.stat().st_size == size, (blob.stat().st_size, size)
    blob.unlink()
print("CAT-RESULT " + json.dumps({"write": write, "read": read}))
"""


@pytest.mark.bench
def test_bench_network_stores_against_cat(live_image: LiveImage,  # noqa: F811
                                          tmp_path: Path) -> None:
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    windows = disk.volumes[2]
    fill_ntfs(BuiltVolume(disk.image, windows.start, windows.size), tmp_path / "mnt-big",
              {"Users/big.bin": os.urandom(BIG)})
    rows = []
    with served(make_ssh_server(tmp_path / "sshd")) as ssh, \
            served(make_ganesha_server(tmp_path / "ganesha", share=ssh.root)) as nfs, \
            served(make_samba_server(tmp_path / "samba", ssh.password, ssh.root)) as smb:
        stick = nas_credentials_stick(tmp_path / "creds.img", tmp_path, ssh,
                                      {"catbench.py": CAT_SCRIPT, "jobstat.py": JOBSTAT,
                                       "cpurate.py": CPURATE.read_text(),
                                       "threadstat.py": THREADSTAT.read_text(),
                                       **alt_package()})
        medium = BootMedium(live_image.iso, mode="kernel", append="recovery.run=shell")
        # BENCH_CPU: QEMU's -cpu for this run, e.g. "max,-avx,-avx2" (default max)
        machine = dataclasses.replace(load_machine("uefi-nvme-usb"),
                                      cpu=os.environ.get("BENCH_CPU", "max"))
        with VM(machine, medium, tmp_path / "vm",
                {"system": disk.image, "store": stick}, timeout=3600,
                guestfwd={f"{NAS}:2049": nfs.port, f"{NAS}:22": ssh.port,
                          f"{NAS}:445": smb.port}) as vm:
            vm.wait_for("Shell: type 'exit'", timeout=BOOT_TIMEOUT)
            vm.wait_for(r"# $", timeout=60)
            vm.shell("mkdir -p /mnt/creds && mount -o ro LABEL=CREDS /mnt/creds")
            if ALT:
                unpack_alt(vm)
            # BENCH_COMPUTE=0: no per-step rates and no local store (nothing is written)
            compute = bench_compute(vm, windows.start, machine.cpu) \
                if os.environ.get("BENCH_COMPUTE", "1") != "0" else None
            kinds = {"smb": (f"smb://{TEST_USER}@{NAS}/images/bench-smb", "smb.cred"),
                     "nfs": (f"nfs://{NAS}/images/bench-nfs", "-"),
                     "ssh": (f"ssh://{TEST_USER}@{NAS}{ssh.root}/bench-ssh", "ssh.cred")}
            # a kind named twice (BENCH_KINDS="smb smb") runs again into a store of its own
            order = os.environ.get("BENCH_KINDS", "smb nfs ssh").split()
            for number, kind in enumerate(order):
                url, creds = kinds[kind]
                again = order[:number].count(kind)
                name = f"bench-{kind}" + (f"-{again}" if again else "")
                rows.append(bench_one(vm, kind, url.replace(f"bench-{kind}", name), creds,
                                      ssh.root / name))
    if compute and (len(rows) == len(kinds) or os.environ.get("BENCH_WRITE")):  # else printed
        write_results(rows, compute)


Stats = dict[str, Any]  # one command's JOBSTAT: wall, CPU seconds, mounts
# BENCH_ALT=REF (a git commit or branch): an A/B in the same boot. The recovery package of
# REF is unpacked into the guest's /tmp and each capture and restore runs first with it
# (PYTHONPATH), then with the image's own code; only the latter goes into the tables.
ALT = os.environ.get("BENCH_ALT", "")
ALT_DIR = "/tmp/alt"
ALT_ENV = f"PYTHONPATH={ALT_DIR}"


def unpack_alt(vm: VM) -> None:
    """REF's package into the guest's /tmp, compiled; then both codes read their modules
    once before any is timed (the first command after the boot reads them from the
    squashfs)."""
    vm.shell(f"mkdir -p {ALT_DIR} && base64 -d /mnt/creds/alt.b64 | tar -xz -C {ALT_DIR} && "
             f"python3 -m compileall -q {ALT_DIR}", timeout=600)
    vm.shell(f"python3 -m recovery --help >/dev/null; {ALT_ENV} python3 -m recovery --help "
             ">/dev/null", timeout=600)


def alt_package() -> dict[str, str]:
    """The stick's alt.b64: REF's recovery package, a base64 tar.gz (the stick takes text)."""
    if not ALT:
        return {}
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar.gz", ALT,
                              "recovery"], capture_output=True, check=True).stdout
    return {"alt.b64": base64.b64encode(archive).decode()}


@dataclass
class Row:
    kind: str
    stored: int
    capture: float  # the job's own seconds (its JSON)
    restore: float
    runs: dict[str, Stats]  # capture, restore, cat-write, cat-read


def bench_one(vm: VM, kind: str, url: str, creds: str, store: Path) -> Row:
    option = f"--credentials /mnt/creds/{creds}" if creds != "-" else ""
    vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    if ALT:  # the same capture with the code of ALT (into a store of its own) first
        timed_job(vm, f"capture --store {url}-alt {option} --name b /dev/nvme0n1", ALT_ENV)
        vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    capture_run, captured = timed_job(vm, f"capture --store {url} {option} --name b "
                                          "/dev/nvme0n1")
    stored = sum(p.stat().st_size for p in (store / "chunks").rglob("*") if p.is_file())
    vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    if ALT:
        timed_job(vm, f"restore --store {url}-alt {option} --yes b /dev/nvme0n1", ALT_ENV)
        vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    restore_run, restored = timed_job(vm, f"restore --store {url} {option} --yes b "
                                          "/dev/nvme0n1")
    # cat's source: as many bytes as the image stored, in RAM (the live system's /tmp)
    vm.shell(f"head -c {stored} /dev/urandom > /tmp/blob", timeout=600)
    out = vm.shell(f"python3 /mnt/creds/catbench.py {url} "
                   f"{'/mnt/creds/' + creds if creds != '-' else '-'} {stored}", timeout=900)
    vm.shell("rm -f /tmp/blob")
    match = re.search(r"CAT-RESULT (\{.*\})", out)
    assert match, out
    cat = json.loads(match.group(1))
    row = Row(kind, stored, float(captured["seconds"]), float(restored["seconds"]),
              {"capture": capture_run, "restore": restore_run, "cat-write": cat["write"],
               "cat-read": cat["read"]})
    print(f"{kind}: {stored / 1e6:.0f} MB stored; capture {row.capture:.1f} s, restore "
          f"{row.restore:.1f} s (the jobs' own)")
    for what, stats in row.runs.items():
        print(f"  {what}: {json.dumps(stats)}")
    return row


@dataclass
class Compute:
    """What the job's steps cost on the guest's CPU with no share involved."""

    cpu: dict[str, Any]  # model name, SIMD flags
    rates: list[dict[str, Any]]  # MB per CPU-second of one thread, per step
    local: dict[str, Stats]  # capture and restore with the store in the guest's RAM
    stored: int


LOCAL_STORE = "/mnt/ram"  # a tmpfs in the guest's RAM


def bench_compute(vm: VM, volume_start: int, cpu: str) -> Compute:
    """The steps' CPU rates (guest_cpurate.py), then a capture into a store in the guest's
    RAM and a restore from it: the jobs' whole CPU per byte with no share."""
    out = vm.shell(f"python3 /mnt/creds/cpurate.py /dev/nvme0n1 {volume_start}", timeout=600)
    match = re.search(r"CPURATE (\{.*\})", out)
    assert match, out
    found = json.loads(match.group(1))
    found["cpu"]["qemu"] = cpu
    print(f"guest CPU: {found['cpu']}")
    for row in found["rates"]:
        print(f"  {row['what']}: {row['MB_per_cpu_s']} MB per CPU-s ({row['MB_per_s']} MB/s)")
    # The live system's own /tmp (its root overlay) refused a store with exit 20 in an
    # earlier run: the reason, printed; the measurement uses a tmpfs of its own.
    probe = vm.shell("python3 -m recovery capture --store /tmp/probe-store --name p "
                     "--partitions boot /dev/nvme0n1 --json >/tmp/probe.json 2>&1; echo "
                     "exit=$?; tail -c 1500 /tmp/probe.json; findmnt -no FSTYPE,OPTIONS -T "
                     "/tmp", timeout=600)
    print(f"  a store in the live system's /tmp: {probe}")
    vm.shell(f"mkdir -p {LOCAL_STORE} && mount -t tmpfs -o size=700m ram {LOCAL_STORE}")
    vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    capture, _ = timed_job(vm, f"capture --store {LOCAL_STORE}/store --name b /dev/nvme0n1")
    stored = int(vm.shell(f"du -sb {LOCAL_STORE}/store/chunks | cut -f1").strip())
    vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    restore, _ = timed_job(vm, f"restore --store {LOCAL_STORE}/store --yes b /dev/nvme0n1")
    vm.shell(f"umount {LOCAL_STORE}")
    for what, stats in (("capture", capture), ("restore", restore)):
        print(f"  local {what}: {json.dumps(stats)}")
    return Compute(found["cpu"], found["rates"], {"capture": capture, "restore": restore},
                   stored)


def timed_job(vm: VM, arguments: str, env: str = "") -> tuple[Stats, dict[str, Any]]:
    """A recovery command's CPU and wall times in the guest (jobstat, and threadstat per
    thread) and its JSON. `env`: NAME=VALUE words for the command (e.g. PYTHONPATH)."""
    out = vm.shell(f"python3 /mnt/creds/jobstat.py env {env} python3 /mnt/creds/threadstat.py "
                   f"/tmp/threads.json recovery {arguments} --json", timeout=1800)
    match = re.search(r"JOBSTAT (\{.*\})", out)
    assert match, out
    stats: Stats = json.loads(match.group(1))
    stats["threads"] = json.loads(vm.shell("cat /tmp/threads.json"))
    document: dict[str, Any] = json.loads(vm.shell("cat /tmp/job.json"))
    assert document.get("ok"), (arguments, document)
    stats["seconds"] = document.get("seconds")
    print(f"guest: {env} recovery {arguments.split()[0]}: {stats['wall']:.1f} s wall, "
          f"job {stats['seconds']} s; threads {json.dumps(stats['threads'])}; vCPU busy "
          f"{json.dumps(stats['vcpu_busy'])}")
    return stats, document


def compute_lines(compute: Compute) -> list[str]:
    flags = " ".join(compute.cpu["flags"])
    lines = ["", f"The guest's CPU (`-cpu {compute.cpu['qemu']}`, TCG): "
             f"{compute.cpu['model']}, SIMD flags "
             f"{flags}. What one thread of the guest does per CPU-second, 4 MiB at a time, no "
             "share involved (tests/bench/guest_cpurate.py):", "",
             "| step | MB per CPU-s | MB/s |", "| --- | --- | --- |"]
    lines += [f"| {row['what']} | {row['MB_per_cpu_s']} | {row['MB_per_s']} |"
              for row in compute.rates]
    mb = compute.stored / 1e6
    lines += ["", f"The same disk captured into a store in the guest's RAM (a tmpfs, "
              f"{mb:.0f} MB stored) and restored from it:", "",
              "| command | wall s | ours (sys) | kernel threads | guest busy | MB per CPU-s "
              "of ours |", "| --- | --- | --- | --- | --- | --- |"]
    for what, stats in compute.local.items():
        lines.append(f"| local {what} | {stats['wall']:.1f} | {stats['ours']:.1f} "
                     f"({stats['ours_sys']:.1f}) | {stats['kthreads']:.1f} | "
                     f"{stats['busy']:.1f} | {mb / max(stats['ours'], 0.01):.1f} |")
    return lines


def write_results(rows: list[Row], compute: Compute) -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"QEMU TCG guest (2 vCPU, e1000e, user-mode networking with guestfwd to the "
             f"servers on the host's 127.0.0.1), host load at the end {load}. Throughput = "
             "stored bytes / seconds; the job's own time (its JSON `seconds`), in brackets "
             "the command's wall time (Python's start, mount and unmount too). Generated by "
             "`python3 -m pytest -m bench -s tests/bench/test_bench_netstore.py`.", "",
             "| share | stored | capture | cat to the share | ratio | restore | "
             "cat from the share | ratio | target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        mb, runs = row.stored / 1e6, row.runs
        capture_wall, restore_wall = runs["capture"]["wall"], runs["restore"]["wall"]
        cat_write, cat_read = runs["cat-write"]["wall"], runs["cat-read"]["wall"]
        lines.append(f"| {row.kind} | {mb:.0f} MB | {mb / row.capture:.1f} "
                     f"({mb / capture_wall:.1f}) MB/s | {mb / cat_write:.1f} MB/s | "
                     f"{cat_write / row.capture:.2f}x ({cat_write / capture_wall:.2f}x) | "
                     f"{mb / row.restore:.1f} ({mb / restore_wall:.1f}) MB/s | "
                     f"{mb / cat_read:.1f} MB/s | {cat_read / row.restore:.2f}x "
                     f"({cat_read / restore_wall:.2f}x) | >= 0.9x |")
    lines += ["", "Where the guest's time went (CPU seconds over both vCPUs, so at most 2x "
              "wall): our process and its children (getrusage), the kernel threads (cifsd, "
              "kworkers, nfsiod), the whole guest busy / idle / waiting for I/O (/proc/stat).",
              "", "| share | command | wall s | ours (sys) | kernel threads | guest busy | "
              "idle | iowait |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        for what, stats in row.runs.items():
            lines.append(f"| {row.kind} | {what} | {stats['wall']:.1f} | {stats['ours']:.1f} "
                         f"({stats['ours_sys']:.1f}) | {stats['kthreads']:.1f} | "
                         f"{stats['busy']:.1f} | {stats['idle']:.1f} | "
                         f"{stats['iowait']:.1f} |")
    mounts = {line.split()[2] + " " + opt for row in rows for stats in row.runs.values()
              for line in stats["mounts"] for opt in line.split()[3].split(",")
              if opt.split("=")[0] in ("rsize", "wsize", "vers", "cache")}
    lines += ["", "Mount options seen: " + ", ".join(sorted(mounts)) + "."]
    lines += compute_lines(compute)
    text = "\n".join(lines) + "\n"
    doc = ROOT / "docs" / "benchmarks.md"
    old = doc.read_text()
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        doc.write_text(f"{head}{BEGIN}\n{text}{END}{rest.split(END, 1)[1]}")
    else:
        doc.write_text(f"{old.rstrip()}\n\n## Network stores against cat "
                       f"(`tests/bench/test_bench_netstore.py`, issue 13)\n\n{BEGIN}\n{text}"
                       f"{END}\n")
