"""Network image stores in the live image (issue 13): wired Ethernet by DHCP on an Intel
e1000e NIC, an unattended capture to a Samba share, a capture to and a restore from an
NFS-Ganesha export and a verify over SSH in one boot, nothing listening.

The guest's network is QEMU user-mode networking with restrict=on: it gets an address from
QEMU's DHCP and can reach nothing but the guestfwd rules to the servers (smbd, ganesha.nfsd,
sshd), which the tests run on the host's 127.0.0.1 with throwaway configs and users; the
guest sees them all as one NAS at 10.0.2.100.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qemu import VM, BootMedium, load_machine
from recovery.errors import NetworkError
from recovery.store.images import stored_area_digests
from recovery.store.objects import ChunkStore
from tests.e2e.conftest import BOOT_TIMEOUT, LiveImage
from tests.e2e.test_tui import check_tui_opens_an_ssh_share
from tests.e2e.windisk import fingerprint, make_gpt_disk, make_store_disk, mounted_store_disk
from tests.netstore.servers import (
    TEST_USER,
    SambaServer,
    SshServer,
    ensure_test_user,
    make_ganesha_server,
    make_samba_server,
    make_ssh_server,
    served,
)

GiB = 1 << 30
MiB = 1 << 20
RESULT = re.compile(r"RECOVERY-RESULT: (PASS|FAIL) (\{.*\})\r?\n")
NAS = "10.0.2.100"  # every server, each on its usual port
SILENT_MAC = "52:54:00:00:0d:0d"  # a second port whose network has no DHCP server
NFS3_PORT, MOUNT_PORT = 20490, 20048  # a second NFS server, NFS 3 only, and its mountd
SMB21_PORT, SMB20_PORT = 1445, 2445  # Samba speaking at most SMB 2.1, and only SMB 2.0


@pytest.fixture
def smb_server(tmp_path: Path) -> Iterator[SambaServer]:
    with served(make_samba_server(tmp_path / "samba")) as server:
        yield server


def credentials_stick(path: Path, tmp_path: Path, text: str) -> Path:
    """A USB stick labelled CREDS holding /nas.cred, as a shop would carry it."""
    make_store_disk(path, 64 * MiB, "CREDS")
    with mounted_store_disk(path, tmp_path / "creds-mnt", read_write=True) as root:
        (root / "nas.cred").write_text(text)
    return path


def test_unattended_capture_to_smb_share_resumes_after_the_server_went_away(
        live_image: LiveImage, smb_server: SambaServer, tmp_path: Path) -> None:
    """smbd is killed in the middle of an unattended capture of PC A: the job ends FAIL
    naming the server and how to resume; `images` lists the image as incomplete only.
    smbd started again, PC A restarted with the same kernel command line and, at the same
    time, PC B (a clone of A, its own NIC address) captured into the same store: both
    complete, A keeps the chunks its first boot wrote, B's image shares A's chunks (each
    stored once), both verify on the host."""
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    stick = credentials_stick(tmp_path / "creds.img", tmp_path,
                              f"username=recoverytest\npassword={smb_server.password}\n")
    store = smb_server.share / "shop"

    def boot(name: str, image: str, system: Path, creds: Path, mac: str) -> VM:
        options = (f"recovery.run=capture recovery.source=NVME-SYS-0001 "
                   f"recovery.image={image} recovery.store=smb://recoverytest@{NAS}/images/shop "
                   "recovery.credentials=CREDS:/nas.cred")
        return VM(load_machine("uefi-nvme-usb"),
                  BootMedium(live_image.iso, mode="kernel", append=options), tmp_path / name,
                  {"system": system, "store": creds}, timeout=1500,
                  guestfwd={f"{NAS}:445": smb_server.port}, mac=mac)

    with boot("capture", "pc-a", disk.image, stick, PC_A) as vm:
        written = wait_for_chunks(store / "chunks", count=12, vm=vm)
        # Chunks are named 32 at a time and this disk has 44: on a fast host the capture
        # could end before smbd does. The guest holds still while its server goes away.
        vm.monitor("stop")
        assert RESULT.search(vm.output) is None, f"the job ended first:\n{vm.tail()}"
        smb_server.stop()
        vm.monitor("cont")
        stopped = vm.elapsed
        verdict, report = job_result(vm)
        print(f"SMB capture: smbd killed at {stopped:.0f} s with {len(written)} chunks "
              f"stored, {verdict} {vm.elapsed - stopped:.0f} s later")
    assert verdict == "FAIL", report
    error = report["result"]["error"]
    assert error["code"] == NetworkError.code, report
    assert f"The server {NAS} stopped answering during the capture" in error["title"], error
    assert "Run the same capture again" in error["action"], error
    assert listed_images(store) == [("pc-a", "incomplete")]  # never shown as complete
    kept = {path: path.stat().st_ino for path in written}
    stale = {path.name for path in (store / "locks").iterdir()}  # left by the gone job

    smb_server.start()
    clone = tmp_path / "pc-b.img"
    subprocess.run(["cp", "--sparse=always", str(disk.image), str(clone)], check=True)
    stick_b = tmp_path / "creds-b.img"
    shutil.copyfile(stick, stick_b)
    with boot("resume", "pc-a", disk.image, stick, PC_A) as vm_a, \
            boot("pc-b", "pc-b", clone, stick_b, PC_B) as vm_b:
        together = watch_locks(store / "locks", stale, {"pc-a": vm_a, "pc-b": vm_b})
        results = {name: job_result(vm) for name, vm in (("pc-a", vm_a), ("pc-b", vm_b))}
        print(f"PC A resumed and PC B captured at once ({together} jobs held locks "
              f"together): A {results['pc-a'][0]} after {vm_a.elapsed:.0f} s, "
              f"B {results['pc-b'][0]} after {vm_b.elapsed:.0f} s")
        for name, (verdict, report) in results.items():
            assert verdict == "PASS", (name, report)
    assert together == 2
    # The chunks of the first boot were kept, not written again.
    assert {path: path.stat().st_ino for path in written} == kept
    assert listed_images(store) == [("pc-a", "complete"), ("pc-b", "complete")]
    chunk_store = ChunkStore.open(store)
    digests = {name: needed_chunks(chunk_store, name) for name in ("pc-a", "pc-b")}
    assert digests["pc-a"] == digests["pc-b"]  # clones: every chunk shared
    # ... and each stored once: nothing else in the store
    assert sorted(p.name for p in stored_chunks(store / "chunks")) == sorted(digests["pc-a"])
    for name in ("capture", "resume", "pc-b"):
        serial = (tmp_path / name / "serial.log").read_bytes()
        assert smb_server.password.encode() not in serial
    manifest, _ = chunk_store.load_image("pc-a")
    assert manifest.source.serial == "NVME-SYS-0001"
    for path in store.rglob("*"):
        if path.is_file():
            assert smb_server.password.encode() not in path.read_bytes(), path
    from recovery.ui.cli import main as recovery_cli
    for name in ("pc-a", "pc-b"):
        assert recovery_cli(["verify", "--store", str(store), name]) == 0


PC_A, PC_B = "52:54:00:0a:00:01", "52:54:00:0b:00:01"


def job_result(vm: VM) -> tuple[str, dict[str, Any]]:
    match = vm.wait_for(RESULT)
    return match.group(1), json.loads(match.group(2))


def watch_locks(folder: Path, stale: set[str], vms: dict[str, VM]) -> int:
    """Until every guest has its result: the most lock files of these jobs at one time.
    The guest whose job takes its lock first is paused (QEMU `stop`) until the other's job
    holds one too, so the two jobs surely run at once, whatever the host's load."""
    most, paused, done = 0, "", False
    while not all(RESULT.search(vm.output) for vm in vms.values()):
        held = lock_images(folder, stale)
        most = max(most, len(held))
        if not done and not paused and len(held) == 1 and held[0] in vms:
            paused = held[0]
            vms[paused].monitor("stop")
        elif paused and len(held) >= 2:
            vms[paused].monitor("cont")
            paused, done = "", True
        time.sleep(0.2)
    return most


def lock_images(folder: Path, stale: set[str]) -> list[str]:
    """The image each live lock in `folder` names ("" before the job claimed one)."""
    images = []
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.suffix == ".yaml" and path.name not in stale:
                with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
                    images.append(str(yaml.safe_load(path.read_text()).get("image", "")))
    return images


def needed_chunks(store: ChunkStore, name: str) -> set[str]:
    manifest, index = store.load_image(name)
    return {digest.hex() for digest in index.stored_digests() | stored_area_digests(manifest)}


def stored_chunks(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]


def wait_for_chunks(folder: Path, count: int, vm: VM, timeout: float = 600) -> list[Path]:
    """Wait (on the host) until the guest has stored `count` chunks; their paths."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunks = stored_chunks(folder)
        if len(chunks) >= count:
            return chunks
        assert RESULT.search(vm.output) is None, f"the job ended first:\n{vm.tail()}"
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} chunks in {folder}:\n{vm.tail()}")


def listed_images(store: Path) -> list[tuple[str, str]]:
    done = subprocess.run([sys.executable, "-m", "recovery", "images", "--store", str(store),
                           "--json"], capture_output=True, text=True, check=True)
    return sorted((image["name"], image["state"]) for image in json.loads(done.stdout)["images"])


def test_dhcp_nfs_capture_restore_and_ssh_verify_in_one_boot(
        live_image: LiveImage, tmp_path: Path) -> None:
    """One boot to a shell: DHCP on e1000e and nothing listening, then capture to an NFS
    export, wipe, restore from it, verify the same image over SSH and over SMB (sshd and
    smbd serve the folder Ganesha exports), SMB's error classes, NFS 3, a restore with a
    capture into the same share meanwhile, a static address, and the TUI on the serial
    console opening the SSH store from `a` (masked password, host key asked)."""
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    original = fingerprint(disk)
    with served(make_ssh_server(tmp_path / "sshd")) as ssh, \
            served(make_ganesha_server(tmp_path / "ganesha", share=ssh.root)) as nfs, \
            served(make_ganesha_server(tmp_path / "ganesha3", ssh.root, version=3)) as nfs3, \
            served(make_samba_server(tmp_path / "samba", ssh.password, ssh.root)) as smb, \
            served(make_samba_server(tmp_path / "smb21", ssh.password, ssh.root,
                                     ("SMB2_10", "SMB2_10"))) as smb21, \
            served(make_samba_server(tmp_path / "smb20", ssh.password, ssh.root,
                                     ("SMB2_02", "SMB2_02"))) as smb20:
        stick = nas_credentials_stick(tmp_path / "creds.img", tmp_path, ssh)
        medium = BootMedium(live_image.iso, mode="kernel", append="recovery.run=shell")
        assert nfs3.mount_port is not None
        with VM(load_machine("uefi-nvme-usb"), medium, tmp_path / "vm",
                {"system": disk.image, "store": stick}, timeout=1800,
                guestfwd={f"{NAS}:2049": nfs.port, f"{NAS}:22": ssh.port,
                          f"{NAS}:445": smb.port, f"{NAS}:{NFS3_PORT}": nfs3.port,
                          f"{NAS}:{MOUNT_PORT}": nfs3.mount_port,
                          f"{NAS}:{SMB21_PORT}": smb21.port,
                          f"{NAS}:{SMB20_PORT}": smb20.port},
                silent_nic=SILENT_MAC) as vm:
            vm.wait_for("Shell: type 'exit'", timeout=BOOT_TIMEOUT)
            vm.wait_for(r"# $", timeout=60)
            print(f"guest: shell after {vm.elapsed:.0f} s (two NICs, one without DHCP)")
            check_dhcp_and_nothing_listens(vm)
            nfs_store = f"nfs://{NAS}/images/shop"
            job(vm, f"capture --store {nfs_store} --name win-nfs /dev/nvme0n1")
            port, silent = check_port_without_dhcp_answer(vm)
            vm.shell("dd if=/dev/zero of=/dev/nvme0n1 bs=1M count=200 conv=fsync status=none")
            restore_while_another_job_captures(vm, nfs_store, ssh.root / "shop")
            vm.shell("mkdir -p /mnt/creds && mount -o ro LABEL=CREDS /mnt/creds")
            job(vm, f"verify --store ssh://{TEST_USER}@{NAS}{ssh.root}/shop "
                    "--credentials /mnt/creds/ssh.cred win-nfs")
            check_smb_errors_then_verify(vm)
            check_nfs3_fallback(vm)
            check_static_address_and_back_to_dhcp(vm, port)
            # The test user is the machine's: a netstore test running meanwhile in another
            # session sets its own password (sshd then said "Failed password" here).
            ensure_test_user(ssh.password)
            check_tui_opens_an_ssh_share(vm, f"ssh://{TEST_USER}@{NAS}{ssh.root}/shop",
                                         ssh.password, ssh.host_key_fingerprint(), "win-nfs",
                                         silent_port=silent)
            check_smb_fallback_to_2_1(vm)
            vm.shell("umount /mnt/creds; sync")
        serial = (tmp_path / "vm" / "serial.log").read_bytes()
        assert ssh.password.encode() not in serial
    assert fingerprint(disk) == original
    from recovery.ui.cli import main as recovery_cli
    for image in ("win-nfs", "pc-2"):
        assert recovery_cli(["verify", "--store", str(ssh.root / "shop"), image]) == 0


def restore_while_another_job_captures(vm: VM, store: str, share: Path) -> None:
    """A restore and a capture at once on one NFS share: the restore of win-nfs onto the
    NVMe disk runs in the background; once it holds its store lock (seen on the host) it is
    stopped (SIGSTOP, so the two surely overlap whatever the load) while a second job, as
    another technician's PC would (its own machine job lock), captures a small disk file
    into the same store; then the restore continues. Both must succeed (the host then
    compares the disk with the original and verifies both images)."""
    before = vm.elapsed
    vm.shell(f"(sh -c 'python3 -m recovery restore --store {store} --yes win-nfs /dev/nvme0n1 "
             "</dev/null & echo $! >/tmp/restore.pid; wait $!; echo restore-exit=$?' "
             ">/tmp/restore.log 2>&1 &)")
    deadline = time.monotonic() + 300
    while "win-nfs" not in lock_images(share / "locks", set()):
        assert time.monotonic() < deadline, vm.shell("cat /tmp/restore.log")
        time.sleep(0.2)
    vm.shell("kill -STOP $(cat /tmp/restore.pid)")
    vm.shell("truncate -s 64M /tmp/pc2.img && printf 'label: gpt\\n2048,+48M\\n' | "
             "sfdisk -q /tmp/pc2.img && dd if=/dev/urandom of=/tmp/pc2.img bs=1M seek=2 "
             "count=16 conv=notrunc status=none")
    captured = vm.shell(f"RECOVERY_LOCK_DIR=/run/pc-2 python3 -m recovery capture --store "
                        f"{store} --name pc-2 /tmp/pc2.img </dev/null >/dev/null 2>&1; "
                        "echo capture-exit=$?", timeout=600)
    assert "capture-exit=0" in captured, captured
    assert "win-nfs" in lock_images(share / "locks", set())  # the restore still holds it
    vm.shell("kill -CONT $(cat /tmp/restore.pid)")
    deadline = time.monotonic() + 900
    while "restore-exit=" not in (log := vm.shell("cat /tmp/restore.log")):
        assert time.monotonic() < deadline, log
        vm.shell("sleep 2")
    assert "restore-exit=0" in log, log
    print(f"guest: restore from NFS with a capture into it meanwhile: "
          f"{vm.elapsed - before:.0f} s")


def job(vm: VM, arguments: str) -> None:
    """One recovery command in the guest; its wall time goes to the test's output."""
    before = vm.elapsed
    vm.shell(f"python3 -m recovery {arguments} </dev/null", timeout=900)
    print(f"guest: recovery {arguments.split()[0]}: {vm.elapsed - before:.0f} s")


def nas_credentials_stick(path: Path, tmp_path: Path, ssh: SshServer,
                          extra: dict[str, str] | None = None) -> Path:
    """A stick labelled CREDS: an SSH key, the NAS's host key, credentials files naming
    them, the SMB password and a wrong one (ext4 keeps the key's mode 0600, which ssh
    insists on)."""
    make_store_disk(path, 64 * MiB, "CREDS")
    host_key = (ssh.folder / "host_key.pub").read_text().split()
    with mounted_store_disk(path, tmp_path / "creds-mnt", read_write=True) as root:
        shutil.copy(ssh.folder / "client_key", root / "nas_key")
        os.chmod(root / "nas_key", 0o600)
        (root / "known_hosts").write_text(f"{NAS} {host_key[0]} {host_key[1]}\n")
        (root / "ssh.cred").write_text("identity_file=nas_key\nknown_hosts=known_hosts\n")
        (root / "smb.cred").write_text(f"username={TEST_USER}\npassword={ssh.password}\n")
        (root / "wrong.cred").write_text(f"username={TEST_USER}\npassword=not-it\n")
        for name, text in (extra or {}).items():
            (root / name).write_text(text)
    return path


def check_smb_errors_then_verify(vm: VM) -> None:
    """A wrong password and a missing share each get their own exit and message; then the
    image captured over NFS verifies over SMB (smbd shares the same folder)."""
    smb = f"smb://{TEST_USER}@{NAS}"
    wrong = images_in_guest(vm, f"{smb}/images/shop --credentials /mnt/creds/wrong.cred")
    assert "exit=71" in wrong and "refused the login" in wrong, wrong
    missing = images_in_guest(vm, f"{smb}/nosuch/shop --credentials /mnt/creds/smb.cred")
    assert "exit=20" in missing and "no SMB share nosuch" in missing, missing
    job(vm, f"verify --store {smb}/images/shop --credentials /mnt/creds/smb.cred win-nfs")


def images_in_guest(vm: VM, store: str) -> str:
    """`recovery images --json --store STORE`'s output in the guest, then exit=STATUS."""
    return vm.shell(f"python3 -m recovery images --json --store {store} </dev/null; "
                    "echo exit=$?", timeout=300)


def check_nfs3_fallback(vm: VM) -> None:
    """An NFS server that only speaks NFS 3: nfs:// falls back to it (its mount service
    named with ?mountport=, as there is no portmapper to ask); without the mount port
    neither version works and the message says both were tried and what to do."""
    store = f"nfs://{NAS}:{NFS3_PORT}/images/shop"
    before = vm.elapsed
    listed = vm.shell(f"python3 -m recovery images --store '{store}?mountport={MOUNT_PORT}' "
                      "</dev/null 2>&1", timeout=300)
    assert "(NFS 3)" in listed and "win-nfs" in listed, listed
    failed = images_in_guest(vm, f"'{store}'")
    assert "exit=70" in failed and "does not offer NFS 4" in failed, failed
    assert "NFS 3 failed too" in failed and "?mountport=" in failed, failed
    print(f"guest: NFS 3 fallback and its error: {vm.elapsed - before:.0f} s")


def check_smb_fallback_to_2_1(vm: VM) -> None:
    """An old NAS that speaks at most SMB 2.1: smb:// falls back to it from SMB 3, and
    ?vers=3.0 forced on it fails saying so; a NAS that speaks only SMB 2.0: both attempts
    fail and the message names both and ?vers=, which then works."""
    before = vm.elapsed
    smb = f"smb://{TEST_USER}@{NAS}"
    creds = "--credentials /mnt/creds/smb.cred"
    listed = vm.shell(f"python3 -m recovery images --store {smb}:{SMB21_PORT}/images/shop "
                      f"{creds} </dev/null 2>&1", timeout=300)
    assert "(SMB 2.1)" in listed and "win-nfs" in listed, listed
    forced = images_in_guest(vm, f"'{smb}:{SMB21_PORT}/images/shop?vers=3.0' {creds}")
    assert "exit=70" in forced and "did not accept SMB 3.0" in forced, forced
    assert "Remove ?vers=" in forced, forced
    neither = images_in_guest(vm, f"{smb}:{SMB20_PORT}/images/shop {creds}")
    assert "exit=70" in neither and "did not accept SMB 3" in neither, neither
    assert "SMB 2.1 failed too" in neither and "?vers=2.0" in neither, neither
    old = vm.shell(f"python3 -m recovery images --store '{smb}:{SMB20_PORT}/images/shop"
                   f"?vers=2.0' {creds} </dev/null 2>&1", timeout=300)
    assert "(SMB 2.0)" in old and "win-nfs" in old, old
    print(f"guest: SMB 3 -> 2.1 fallback, ?vers= forced, neither: {vm.elapsed - before:.0f} s")


def wait_for_address(vm: VM, address: str) -> str:
    shown = ""
    for _ in range(60):
        shown = vm.shell("ip -4 -br addr show scope global")
        if address in shown:
            break
        vm.shell("sleep 1")
    assert address in shown, shown
    return shown


def check_port_without_dhcp_answer(vm: VM) -> tuple[str, str]:
    """The second NIC (silent_nic: a link, no DHCP server) is named with what to do, and
    nothing waited for it: the shell came up and the first port got its address and did a
    capture meanwhile. Returns the names of the DHCP port (the one with the address) and
    of the silent one."""
    before = vm.elapsed
    deadline = time.monotonic() + 300
    while True:  # networkd counts as "no answer" after NO_ANSWER_SECONDS of asking
        links = json.loads(vm.shell("python3 -m recovery network --json"))["links"]
        silent = next(link for link in links if link["mac"] == SILENT_MAC)
        if silent["no_dhcp_answer"] or time.monotonic() > deadline:
            break
        vm.shell("sleep 5")
    assert silent["carrier"] and not silent["addresses"], silent
    assert silent["no_dhcp_answer"], links
    shown = vm.shell("python3 -m recovery network")
    name = silent["name"]
    assert f"{name}: no DHCP answer in " in shown, shown
    assert f"No DHCP server answered on {name}" in shown, shown
    assert f"--static ADDRESS/PREFIX --interface {name}" in shown, shown
    # Two ports with a cable: a typed address must name its port; the error lists both.
    refused = vm.shell("python3 -m recovery network --static 10.0.2.50/24; echo exit=$?")
    assert "exit=2" in refused and "Which Ethernet port" in refused, refused
    assert f"{name}: no DHCP answer" in refused, refused
    # Nothing waits: no systemd job queued (the serial terminal gets the pager's escapes).
    jobs = re.sub(r"\x1b[\[=>?0-9;]*[A-Za-z=>]?", "",
                  vm.shell("systemctl --no-pager list-jobs --no-legend"))
    assert [line for line in jobs.splitlines() if line.strip() and "No jobs" not in line] \
        == [], jobs
    print(f"guest: the port without DHCP answer ({name}) named after "
          f"{silent['waiting_seconds']} s of asking; its checks took {vm.elapsed - before:.0f} s")
    return (str(next(link["name"] for link in links if "10.0.2.15/24" in link["addresses"])),
            str(name))


def check_static_address_and_back_to_dhcp(vm: VM, port: str) -> None:
    """A typed address replaces the DHCP one on the port; --dhcp brings DHCP back."""
    document = vm.shell("python3 -m recovery network --static 10.0.2.50/24 --gateway "
                        f"10.0.2.2 --dns 10.0.2.3 --interface {port} --json")
    assert '"address": "10.0.2.50/24"' in document, document
    shown = wait_for_address(vm, "10.0.2.50/24")
    assert "10.0.2.15/" not in shown, shown
    assert "nameserver 10.0.2.3" in vm.shell("cat /etc/resolv.conf")
    vm.shell(f"python3 -m recovery network --dhcp --interface {port} --json")
    wait_for_address(vm, "10.0.2.15/24")


def check_dhcp_and_nothing_listens(vm: VM) -> None:
    wait_for_address(vm, "10.0.2.15/24")
    links = vm.shell("python3 -m recovery network --json")
    assert '"carrier": true' in links and "10.0.2.15/24" in links, links
    tcp = vm.shell("ss -Htln")
    assert tcp.strip() == "", tcp
    udp = [line for line in vm.shell("ss -Huln").splitlines() if line.strip()]
    # The DHCP client's own socket (port 68) is the only one.
    assert all(re.search(r":68\s", line) for line in udp), udp
    # Kept by image-build/exclude.txt: PCI and USB Ethernet, cifs, NFS, Realtek firmware.
    vm.shell("modinfo -n e1000e igb igc r8169 r8152 ax88179_178a cdc_ether cifs nfsv4 nfsv3")
    assert vm.shell("ls /lib/firmware/rtl_nic | wc -l").strip() != "0"
    # Nothing waits for the network at boot (the time to the TUI must not grow).
    waits = vm.shell("systemctl is-enabled systemd-networkd-wait-online.service || true")
    assert waits.strip().endswith("masked"), waits
