"""util-linux sfdisk: write an MBR table with its disk signature, slots and exact starts."""

from __future__ import annotations

from pathlib import Path

from recovery.model.layout import PartitionTable
from recovery.sys.run import run, run_text


def write_mbr(device: Path, table: PartitionTable) -> None:
    """Replace the table on `device` with `table`.

    The kernel on these machines cannot re-read tables of loop devices and image files have
    none to re-read, so sfdisk must neither ask nor tell it; `--wipe-partitions never` keeps
    sfdisk from erasing file-system signatures inside the partitions we are restoring.
    """
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", "--wipe", "always",
         "--wipe-partitions", "never", str(device)],
        input_bytes=mbr_script(table).encode())


def load() -> None:
    """Run sfdisk once idle, so its program and libraries are in memory (see
    engine.table.load_table_tools)."""
    run(["sfdisk", "--version"], quiet=True)


def mbr_script(table: PartitionTable) -> str:
    """An sfdisk script: each line names its slot ("pN"), so empty slots stay empty and
    logical partitions follow their extended container in chain order."""
    sector = table.sector_size
    lines = ["label: dos", f"label-id: 0x{int(table.disk_id, 16):08x}", "unit: sectors", ""]
    ordered = sorted(table.partitions, key=lambda p: (p.kind == "logical", p.number))
    for part in ordered:
        fields = [f"start={part.start // sector}", f"size={part.size // sector}",
                  f"type={int(part.type_id, 16):x}"]
        if part.bootable:
            fields.append("bootable")
        lines.append(f"p{part.number} : " + ", ".join(fields))
    return "\n".join(lines) + "\n"


def write_single_partition(device: Path, *, gpt: bool, start: int, type_id: str,
                           sector_size: int = 512) -> None:
    """A new table on `device` with one partition from byte `start` to the end (a drive
    prepared for data: MBR type 7 or GPT basic data); every old signature is wiped. Then
    the kernel is asked to re-read it, so a real drive gets its partition node (a loop
    device here may not: its partition is reached by offset)."""
    script = (f"label: {'gpt' if gpt else 'dos'}\nunit: sectors\n\n"
              f"start={start // sector_size}, type={type_id}\n")
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", "--wipe", "always",
         "--wipe-partitions", "always", str(device)], input_bytes=script.encode())
    run(["blockdev", "--rereadpt", str(device)], check=False)


def dump(device: Path) -> str:
    """`sfdisk --dump` output, for logs and for tests that check what we wrote."""
    return run_text(["sfdisk", "--dump", str(device)])


def set_gpt_name(device: Path, number: int, name: str) -> None:
    """Name a GPT partition: sgdisk's `-c N:NAME` cuts names at a colon, sfdisk does not."""
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", "--part-label", str(device),
         str(number), name])
