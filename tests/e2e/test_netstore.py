"""Network image stores in the live image (issue 13): wired Ethernet by DHCP on an Intel
e1000e NIC, an unattended capture to a Samba share, a capture to and a restore from an
NFS-Ganesha export and a verify over SSH in one boot, nothing listening.

The guest's network is QEMU user-mode networking with restrict=on: it gets an address from
QEMU's DHCP and can reach nothing but the guestfwd rules to the servers (smbd, ganesha.nfsd,
sshd), which the tests run on the host's 127.0.0.1 with throwaway configs and users; the
guest sees them all as one NAS at 10.0.2.100.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from qemu import VM, BootMedium, load_machine
from recovery.store.objects import ChunkStore
from tests.e2e.conftest import BOOT_TIMEOUT, LiveImage
from tests.e2e.windisk import fingerprint, make_gpt_disk, make_store_disk, mounted_store_disk
from tests.netstore.servers import (
    TEST_USER,
    SambaServer,
    SshServer,
    make_ganesha_server,
    make_samba_server,
    make_ssh_server,
    served,
)

GiB = 1 << 30
MiB = 1 << 20
RESULT = re.compile(r"RECOVERY-RESULT: (PASS|FAIL) (\{.*\})\r?\n")
NAS = "10.0.2.100"  # every server, each on its usual port


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


def test_unattended_capture_to_smb_share(live_image: LiveImage, smb_server: SambaServer,
                                         tmp_path: Path) -> None:
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    stick = credentials_stick(tmp_path / "creds.img", tmp_path,
                              f"username=recoverytest\npassword={smb_server.password}\n")
    options = (f"recovery.run=capture recovery.source=NVME-SYS-0001 recovery.image=win-smb "
               f"recovery.store=smb://recoverytest@{NAS}/images/shop "
               "recovery.credentials=CREDS:/nas.cred")
    medium = BootMedium(live_image.iso, mode="kernel", append=options)
    with VM(load_machine("uefi-nvme-usb"), medium, tmp_path / "capture",
            {"system": disk.image, "store": stick}, timeout=900,
            guestfwd={f"{NAS}:445": smb_server.port}) as vm:
        match = vm.wait_for(RESULT)
        verdict, report = match.group(1), json.loads(match.group(2))
        print(f"capture to SMB: {verdict} after {vm.elapsed:.0f} s")
        assert verdict == "PASS", report
        assert vm.wait_exit(timeout=120) == 0
    serial = (tmp_path / "capture" / "serial.log").read_bytes()
    assert smb_server.password.encode() not in serial
    store = smb_server.share / "shop"
    manifest, _ = ChunkStore.open(store).load_image("win-smb")
    assert manifest.source.serial == "NVME-SYS-0001"
    for path in store.rglob("*"):
        if path.is_file():
            assert smb_server.password.encode() not in path.read_bytes(), path
    from recovery.ui.cli import main as recovery_cli
    assert recovery_cli(["verify", "--store", str(store), "win-smb"]) == 0


def test_dhcp_nfs_capture_restore_and_ssh_verify_in_one_boot(
        live_image: LiveImage, tmp_path: Path) -> None:
    """One boot to a shell: DHCP on e1000e and nothing listening, then capture to an NFS
    export, wipe, restore from it, verify the same image over SSH and over SMB (sshd and
    smbd serve the folder Ganesha exports), SMB's error classes, a static address."""
    disk = make_gpt_disk(tmp_path / "windows.img", 2 * GiB, tmp_path / "build")
    original = fingerprint(disk)
    with served(make_ssh_server(tmp_path / "sshd")) as ssh, \
            served(make_ganesha_server(tmp_path / "ganesha", share=ssh.root)) as nfs, \
            served(make_samba_server(tmp_path / "samba", ssh.password, ssh.root)) as smb:
        stick = nas_credentials_stick(tmp_path / "creds.img", tmp_path, ssh)
        medium = BootMedium(live_image.iso, mode="kernel", append="recovery.run=shell")
        with VM(load_machine("uefi-nvme-usb"), medium, tmp_path / "vm",
                {"system": disk.image, "store": stick}, timeout=1800,
                guestfwd={f"{NAS}:2049": nfs.port, f"{NAS}:22": ssh.port,
                          f"{NAS}:445": smb.port}) as vm:
            vm.wait_for("Shell: type 'exit'", timeout=BOOT_TIMEOUT)
            vm.wait_for(r"# $", timeout=60)
            check_dhcp_and_nothing_listens(vm)
            nfs_store = f"nfs://{NAS}/images/shop"
            job(vm, f"capture --store {nfs_store} --name win-nfs /dev/nvme0n1")
            vm.shell("dd if=/dev/zero of=/dev/nvme0n1 bs=1M count=200 conv=fsync status=none")
            job(vm, f"restore --store {nfs_store} --yes win-nfs /dev/nvme0n1")
            vm.shell("mkdir -p /mnt/creds && mount -o ro LABEL=CREDS /mnt/creds")
            job(vm, f"verify --store ssh://{TEST_USER}@{NAS}{ssh.root}/shop "
                    "--credentials /mnt/creds/ssh.cred win-nfs")
            check_smb_errors_then_verify(vm)
            vm.shell("umount /mnt/creds; sync")
            check_static_address_and_back_to_dhcp(vm)
        serial = (tmp_path / "vm" / "serial.log").read_bytes()
        assert ssh.password.encode() not in serial
    assert fingerprint(disk) == original
    from recovery.ui.cli import main as recovery_cli
    assert recovery_cli(["verify", "--store", str(ssh.root / "shop"), "win-nfs"]) == 0


def job(vm: VM, arguments: str) -> None:
    """One recovery command in the guest; its wall time goes to the test's output."""
    before = vm.elapsed
    vm.shell(f"python3 -m recovery {arguments} </dev/null", timeout=900)
    print(f"guest: recovery {arguments.split()[0]}: {vm.elapsed - before:.0f} s")


def nas_credentials_stick(path: Path, tmp_path: Path, ssh: SshServer) -> Path:
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
    return path


def check_smb_errors_then_verify(vm: VM) -> None:
    """A wrong password and a missing share each get their own exit and message; then the
    image captured over NFS verifies over SMB (smbd shares the same folder)."""
    smb = f"smb://{TEST_USER}@{NAS}"
    wrong = vm.shell(f"python3 -m recovery images --json --store {smb}/images/shop "
                     "--credentials /mnt/creds/wrong.cred; echo exit=$?", timeout=300)
    assert "exit=71" in wrong and "refused the login" in wrong, wrong
    missing = vm.shell(f"python3 -m recovery images --json --store {smb}/nosuch/shop "
                       "--credentials /mnt/creds/smb.cred; echo exit=$?", timeout=300)
    assert "exit=20" in missing and "no SMB share nosuch" in missing, missing
    job(vm, f"verify --store {smb}/images/shop --credentials /mnt/creds/smb.cred win-nfs")


def wait_for_address(vm: VM, address: str) -> str:
    shown = ""
    for _ in range(60):
        shown = vm.shell("ip -4 -br addr show scope global")
        if address in shown:
            break
        vm.shell("sleep 1")
    assert address in shown, shown
    return shown


def check_static_address_and_back_to_dhcp(vm: VM) -> None:
    """A typed address replaces the DHCP one on the port; --dhcp brings DHCP back."""
    document = vm.shell("python3 -m recovery network --static 10.0.2.50/24 --gateway "
                        "10.0.2.2 --dns 10.0.2.3 --json")
    assert '"address": "10.0.2.50/24"' in document, document
    shown = wait_for_address(vm, "10.0.2.50/24")
    assert "10.0.2.15/" not in shown, shown
    assert "nameserver 10.0.2.3" in vm.shell("cat /etc/resolv.conf")
    vm.shell("python3 -m recovery network --dhcp --json")
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
