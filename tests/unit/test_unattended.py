"""Unattended mode: kernel command line -> CLI job -> RECOVERY-RESULT line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from recovery.errors import UsageError
from recovery.model.disk import Disk, DiskPartition
from recovery.ui import unattended
from recovery.ui.cli import build_parser
from recovery.ui.unattended import (
    PASSED_OPTIONS,
    StoreSpec,
    UnattendedJob,
    cli_arguments,
    find_store_partition,
    parse_cmdline,
    result_line,
)

BOOT = "BOOT_IMAGE=/live/vmlinuz boot=live quiet console=ttyS0,115200n8"


def test_no_recovery_options_means_no_job() -> None:
    assert parse_cmdline(BOOT) is None


def test_restore_job_from_the_command_line() -> None:
    job = parse_cmdline(f"{BOOT} recovery.run=restore recovery.store=STORE:/images/lab "
                        "recovery.image=win10-lab recovery.target=NVME-SYS-0001 recovery.yes=1")
    assert job == UnattendedJob(run="restore", store=StoreSpec("/images/lab", label="STORE"),
                                image="win10-lab", target="NVME-SYS-0001", yes=True)
    assert job.is_engine_job


def test_store_on_a_device_node() -> None:
    job = parse_cmdline("recovery.run=capture recovery.store=/dev/sdb1:store "
                        "recovery.source=/dev/nvme0n1")
    assert job is not None and job.store == StoreSpec("/store", device=Path("/dev/sdb1"))


@pytest.mark.parametrize("run", ["tui", "shell"])
def test_interactive_modes_are_not_jobs(run: str) -> None:
    job = parse_cmdline(f"recovery.run={run}")
    assert job is not None and not job.is_engine_job


@pytest.mark.parametrize(("cmdline", "missing"), [
    ("recovery.run=restore recovery.store=S:/x recovery.image=I", "recovery.target="),
    ("recovery.run=capture recovery.store=S:/x", "recovery.source="),
    ("recovery.run=verify recovery.image=I", "recovery.store="),
    ("recovery.run=rollback recovery.volume=SER1", "recovery.point="),
])
def test_incomplete_jobs_are_refused_by_name(cmdline: str, missing: str) -> None:
    with pytest.raises(UsageError, match=missing):
        parse_cmdline(cmdline)


def test_unknown_job_and_bad_store_are_refused() -> None:
    with pytest.raises(UsageError, match=r"recovery\.run=format"):
        parse_cmdline("recovery.run=format")
    with pytest.raises(UsageError, match="names no file system"):
        parse_cmdline("recovery.run=verify recovery.store=nocolon recovery.image=I")


def test_cli_arguments_for_each_job() -> None:
    store = StoreSpec("/s", label="L")
    nodes = {"SER1": "/dev/nvme0n1", "SER2": "/dev/sda"}
    capture = UnattendedJob("capture", store, image="img", source="SER1")
    restore = UnattendedJob("restore", store, image="img", target="SER2", yes=True)
    verify = UnattendedJob("verify", store, image="img", target="SER2")
    where = Path("/mnt/s")
    assert cli_arguments(capture, where, nodes.__getitem__) == [
        "capture", "/dev/nvme0n1", "--store", "/mnt/s", "--name", "img", "--json"]
    assert cli_arguments(restore, where, nodes.__getitem__) == [
        "restore", "--store", "/mnt/s", "img", "/dev/sda", "--yes", "--json"]
    assert cli_arguments(verify, where, nodes.__getitem__) == [
        "verify", "--store", "/mnt/s", "img", "--target", "/dev/sda", "--json"]
    rescue = parse_cmdline("recovery.run=capture recovery.store=L:/s recovery.source=SER1 "
                           "recovery.rescue=1")
    assert rescue is not None and rescue.rescue
    assert cli_arguments(rescue, where, nodes.__getitem__) == [
        "capture", "/dev/nvme0n1", "--store", "/mnt/s", "--rescue", "--json"]


def test_restore_and_capture_options_become_the_cli_flags_of_the_same_name() -> None:
    nodes = {"SER1": "/dev/nvme0n1"}
    where = Path("/mnt/s")
    fit = parse_cmdline("recovery.run=restore recovery.store=L:/s recovery.image=img "
                        "recovery.target=SER1 recovery.yes=1 recovery.system-size=1200M "
                        "recovery.layout=fit recovery.plan-only=1 recovery.delta=0")
    assert fit is not None
    argv = cli_arguments(fit, where, nodes.__getitem__)
    assert argv == ["restore", "--store", "/mnt/s", "img", "/dev/nvme0n1", "--yes",
                    "--layout", "fit", "--system-size", "1200M", "--plan-only", "--json"]
    build_parser().parse_args(argv)  # the CLI itself takes them
    capture = parse_cmdline("recovery.run=capture recovery.store=L:/s recovery.source=SER1 "
                            "recovery.partitions=boot,system recovery.read-all=yes "
                            "recovery.layout=same")  # a restore option: not for a capture
    assert capture is not None
    argv = cli_arguments(capture, where, nodes.__getitem__)
    assert argv == ["capture", "/dev/nvme0n1", "--store", "/mnt/s", "--partitions",
                    "boot,system", "--read-all", "--json"]
    build_parser().parse_args(argv)


@pytest.mark.parametrize(("option", "wanted"), [
    ("recovery.layout=shrink", "fit or same"), ("recovery.system-size=big", "a size"),
    ("recovery.plan-only=maybe", "1 (or 0)"), ("recovery.system-size=", "a size")])
def test_a_bad_option_value_is_refused_by_its_kernel_name(option: str, wanted: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_cmdline("recovery.run=restore recovery.store=L:/s recovery.image=img "
                      f"recovery.target=SER1 {option}")
    assert option in refused.value.title and wanted in refused.value.title


def test_every_passed_option_is_a_flag_of_its_cli_command() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for job, options in PASSED_OPTIONS.items():
        flags = {s for a in commands.choices[job]._actions for s in a.option_strings}
        assert {f"--{name}" for name in options} <= flags, job


def test_rollback_job_needs_no_store_and_maps_onto_restore_points() -> None:
    job = parse_cmdline("recovery.run=rollback recovery.volume=SER1 recovery.point=vss-1 "
                        "recovery.hive=SYSTEM,SAM recovery.partition=3 recovery.yes=1")
    assert job == UnattendedJob("rollback", volume="SER1", point="vss-1", hive="SYSTEM,SAM",
                                partition="3", yes=True)
    nodes = {"SER1": "/dev/nvme0n1"}
    assert cli_arguments(job, None, nodes.__getitem__) == [
        "restore-points", "rollback", "/dev/nvme0n1", "vss-1", "--partition", "3",
        "--hive", "SYSTEM,SAM", "--yes", "--json"]
    # A partition node is passed on as it is; a store receives a copy of the undo record.
    on_partition = UnattendedJob("rollback", volume="/dev/sda3", point="regback")
    assert cli_arguments(on_partition, Path("/mnt/s"), nodes.__getitem__) == [
        "restore-points", "rollback", "/dev/sda3", "regback", "--undo-copy", "/mnt/s/undo",
        "--json"]


def _disk(partitions: tuple[DiskPartition, ...]) -> Disk:
    return Disk(stable_id="usb-X", node=Path("/dev/sdb"), model="Stick", serial="X", wwn="",
                bus="usb", size=8 << 30, logical_sector_size=512, physical_sector_size=512,
                removable=True, read_only=False, partitions=partitions)


def test_store_partition_by_label_or_node() -> None:
    part = DiskPartition(number=1, node=Path("/dev/sdb1"), start=1 << 20, size=1 << 30,
                         fs_type="exfat", fs_label="STORE", fs_uuid="", part_uuid="",
                         part_type="0x7", part_name="")
    disks = [_disk((part,))]
    assert find_store_partition(StoreSpec("/", label="STORE"), disks) == part
    assert find_store_partition(StoreSpec("/", device=Path("/dev/sdb1")), disks) == part
    assert find_store_partition(StoreSpec("/", label="OTHER"), disks) is None


def test_result_line_is_one_parseable_line() -> None:
    line = result_line({"job": "verify", "exit_status": 23, "result": {"error": "x\ny"}})
    verdict, payload = line.removeprefix("RECOVERY-RESULT: ").split(" ", 1)
    assert verdict == "FAIL" and "\n" not in line
    assert json.loads(payload)["exit_status"] == 23
    assert result_line({"exit_status": 0}).startswith("RECOVERY-RESULT: PASS ")


def test_bad_command_line_prints_fail_on_every_console(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("quiet recovery.run=restore recovery.store=S:/x\n")
    console = tmp_path / "ttyS0"
    console.touch()
    status = unattended.main(["--cmdline", str(cmdline), "--console", str(console),
                              "--console", str(tmp_path / "missing-dir" / "tty1")])
    assert status == UsageError.code
    line = console.read_text().strip()
    assert line.startswith("RECOVERY-RESULT: FAIL ") and "recovery.image=" in line


def test_job_that_cannot_find_its_store_fails_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No disk here carries this label: the job must end in a FAIL line naming the store.
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("recovery.run=verify recovery.store=NO-SUCH-LABEL-42:/s "
                       "recovery.image=I\n")
    monkeypatch.setattr(unattended, "STORE_WAIT_SECONDS", 0.0)
    console = tmp_path / "console"
    console.touch()
    status = unattended.main(["--cmdline", str(cmdline), "--console", str(console)])
    assert status == 10
    line = console.read_text().strip().splitlines()[-1]
    assert "NO-SUCH-LABEL-42" in line and line.startswith("RECOVERY-RESULT: FAIL")
