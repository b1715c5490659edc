"""GPT fdisk's sgdisk: write a GPT with exactly the identifiers and starts we were given."""

from __future__ import annotations

from pathlib import Path

from recovery.model.layout import PartitionTable
from recovery.sys.run import run, run_text

# sgdisk only warns (exit 0) when the kernel cannot re-read the table, which is always the
# case for loop devices and image files here; any non-zero exit is a real failure.


def write_gpt(device: Path, table: PartitionTable) -> None:
    """Write `table` to `device`, whose old tables the caller has already cleared."""
    run(["sgdisk", *gpt_arguments(table), str(device)])


def names_itself(name: str) -> bool:
    """Whether `--change-name` can set `name`: sgdisk cuts a name at a colon, so those are
    set afterwards with sfdisk.set_gpt_name."""
    return ":" not in name


def load() -> None:
    """Run sgdisk once idle, so its program and libraries are in memory (see
    engine.table.load_table_tools)."""
    run(["sgdisk", "--version"], quiet=True)


def gpt_arguments(table: PartitionTable) -> list[str]:
    """sgdisk options in the order it must apply them: clear, table shape, disk, partitions.

    `-a 1` keeps sgdisk from rounding our exact starts to its 1 MiB alignment.
    """
    argv = ["--clear", "--set-alignment=1"]
    if table.entry_count != 128:
        argv.append(f"--resize-table={table.entry_count}")
    argv.append(f"--disk-guid={table.disk_id}")
    sector = table.sector_size
    for part in table.partitions:
        n = part.number
        argv += [f"--new={n}:{part.start // sector}:{part.end // sector - 1}",
                 f"--typecode={n}:{part.type_id}",
                 f"--partition-guid={n}:{part.guid}"]
        if part.name and names_itself(part.name):
            argv.append(f"--change-name={n}:{part.name}")
        if part.attributes:
            argv.append(f"--attributes={n}:=:{part.attributes:016X}")
    return argv


def describe(device: Path) -> str:
    """`sgdisk --print` output, for logs and for tests that check what we wrote."""
    return run_text(["sgdisk", "--print", str(device)])
