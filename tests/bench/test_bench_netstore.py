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
to a file on the share (then sync) and, page caches dropped, from that file to /dev/null.
Throughput is B / seconds; the capture also reads the disk, hashes and compresses, the
restore also decompresses, writes the disk and reads it back. Two times per job: the job's
own (its JSON `seconds`: plan, work, check; inside the mount, as cat's time is) and the
command's wall time (Python's start, the mount and unmount too). The ratios go to
docs/benchmarks.md with the host's load; nothing is asserted about time. BENCH_KINDS="nfs"
(a list of smb, nfs, ssh) runs only those and prints without writing.
"""

from __future__ import annotations

import json
import os
import re
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
BEGIN, END = "<!-- netstore bench: begin -->", "<!-- netstore bench: end -->"
GiB = 1 << 30
BIG = 256 << 20
CAT_SCRIPT = """\
import subprocess, sys, time
from pathlib import Path
from recovery.model.netstore import Credentials, parse_url, read_credentials
from recovery.store.remote import mounted_store
url, creds, size = parse_url(sys.argv[1]), sys.argv[2], int(sys.argv[3])
credentials = read_credentials(Path(creds)) if creds != "-" else Credentials()
with mounted_store(url, credentials) as store:
    store.path.mkdir(parents=True, exist_ok=True)
    blob = store.path / "cat-blob"
    start = time.monotonic()
    subprocess.run(f"cat /tmp/blob > {blob} && sync -f {blob}", shell=True, check=True)
    write = time.monotonic() - start
    Path("/proc/sys/vm/drop_caches").write_text("3")
    start = time.monotonic()
    subprocess.run(f"cat {blob} > /dev/null", shell=True, check=True)
    read = time.monotonic() - start
    assert blob.stat().st_size == size, (blob.stat().st_size, size)
    blob.unlink()
print(f"CAT-RESULT {write:.3f} {read:.3f}")
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
                                      {"catbench.py": CAT_SCRIPT})
        medium = BootMedium(live_image.iso, mode="kernel", append="recovery.run=shell")
        with VM(load_machine("uefi-nvme-usb"), medium, tmp_path / "vm",
                {"system": disk.image, "store": stick}, timeout=3600,
                guestfwd={f"{NAS}:2049": nfs.port, f"{NAS}:22": ssh.port,
                          f"{NAS}:445": smb.port}) as vm:
            vm.wait_for("Shell: type 'exit'", timeout=BOOT_TIMEOUT)
            vm.wait_for(r"# $", timeout=60)
            vm.shell("mkdir -p /mnt/creds && mount -o ro LABEL=CREDS /mnt/creds")
            kinds = {"smb": (f"smb://{TEST_USER}@{NAS}/images/bench-smb", "smb.cred"),
                     "nfs": (f"nfs://{NAS}/images/bench-nfs", "-"),
                     "ssh": (f"ssh://{TEST_USER}@{NAS}{ssh.root}/bench-ssh", "ssh.cred")}
            for kind in os.environ.get("BENCH_KINDS", "smb nfs ssh").split():
                url, creds = kinds[kind]
                rows.append(bench_one(vm, kind, url, creds, ssh.root / f"bench-{kind}"))
    if len(rows) == len(kinds):  # a partial run only prints its numbers
        write_results(rows)


Row = tuple[str, int, float, float, float, float, float, float]


def bench_one(vm: VM, kind: str, url: str, creds: str, store: Path) -> Row:
    option = f"--credentials /mnt/creds/{creds}" if creds != "-" else ""
    vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    capture_wall, captured = timed_job(vm, f"capture --store {url} {option} --name b "
                                           "/dev/nvme0n1")
    stored = sum(p.stat().st_size for p in (store / "chunks").rglob("*") if p.is_file())
    vm.shell("sync; echo 3 > /proc/sys/vm/drop_caches")
    restore_wall, restored = timed_job(vm, f"restore --store {url} {option} --yes b "
                                           "/dev/nvme0n1")
    # cat's source: as many bytes as the image stored, in RAM (the live system's /tmp)
    vm.shell(f"head -c {stored} /dev/urandom > /tmp/blob", timeout=600)
    out = vm.shell(f"python3 /mnt/creds/catbench.py {url} "
                   f"{'/mnt/creds/' + creds if creds != '-' else '-'} {stored}", timeout=900)
    vm.shell("rm -f /tmp/blob")
    match = re.search(r"CAT-RESULT ([\d.]+) ([\d.]+)", out)
    assert match, out
    cat_write, cat_read = float(match.group(1)), float(match.group(2))
    capture, restore = float(captured["seconds"]), float(restored["seconds"])
    print(f"{kind}: {stored / 1e6:.0f} MB stored; capture {capture:.1f} s "
          f"({capture_wall:.1f} s wall), cat to the share {cat_write:.1f} s; restore "
          f"{restore:.1f} s ({restore_wall:.1f} s wall), cat from the share {cat_read:.1f} s")
    return kind, stored, capture, capture_wall, cat_write, restore, restore_wall, cat_read


def timed_job(vm: VM, arguments: str) -> tuple[float, dict[str, Any]]:
    """A recovery command's wall time in the guest and its JSON document."""
    before = vm.elapsed
    vm.shell(f"python3 -m recovery {arguments} --json </dev/null >/tmp/job.json 2>/dev/null",
             timeout=1800)
    wall = vm.elapsed - before
    print(f"guest: recovery {arguments.split()[0]}: {wall:.1f} s wall")
    document: dict[str, Any] = json.loads(vm.shell("cat /tmp/job.json"))
    assert document.get("ok"), document
    return wall, document


def write_results(rows: list[Row]) -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"QEMU TCG guest (2 vCPU, e1000e, user-mode networking with guestfwd to the "
             f"servers on the host's 127.0.0.1), host load at the end {load}. Throughput = "
             "stored bytes / seconds; the job's own time (its JSON `seconds`), in brackets "
             "the command's wall time (Python's start, mount and unmount too). Generated by "
             "`python3 -m pytest -m bench -s tests/bench/test_bench_netstore.py`.", "",
             "| share | stored | capture | cat to the share | ratio | restore | "
             "cat from the share | ratio | target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, stored, capture, capture_wall, cat_write, restore, restore_wall, cat_read in rows:
        mb = stored / 1e6
        lines.append(f"| {kind} | {mb:.0f} MB | {mb / capture:.1f} ({mb / capture_wall:.1f}) "
                     f"MB/s | {mb / cat_write:.1f} MB/s | {cat_write / capture:.2f}x "
                     f"({cat_write / capture_wall:.2f}x) | {mb / restore:.1f} "
                     f"({mb / restore_wall:.1f}) MB/s | {mb / cat_read:.1f} MB/s | "
                     f"{cat_read / restore:.2f}x ({cat_read / restore_wall:.2f}x) | >= 0.9x |")
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
