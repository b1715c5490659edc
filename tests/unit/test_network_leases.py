"""Name servers from systemd-networkd's lease files, as networkd writes them: a lease is
written as a hidden temp file (".#<random>") and renamed, so the folder may list a file
that is gone a moment later (CI: `recovery network --dhcp` failed with FileNotFoundError
on /run/systemd/netif/leases/.#2nupYhl)."""

from __future__ import annotations

from pathlib import Path

from recovery.sys.network import lease_name_servers, update_resolv_conf


def test_temp_files_and_vanished_leases_are_skipped(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    leases.mkdir()
    (leases / "2").write_text("# This is private data. Do not parse.\nADDRESS=10.0.2.15\n"
                              "NETMASK=255.255.255.0\nROUTER=10.0.2.2\nDNS=10.0.2.3\n")
    (leases / ".#2nupYhl").write_text("ADDRESS=10.0.2.15\nDNS=192.0.2.99\n")  # being written
    (leases / "3").symlink_to(leases / "gone")  # listed, then gone when read
    resolv = tmp_path / "resolv.conf"
    assert lease_name_servers(leases) == ["10.0.2.3"]
    assert update_resolv_conf(leases, resolv) == ["10.0.2.3"]
    assert "nameserver 10.0.2.3\n" in resolv.read_text()
