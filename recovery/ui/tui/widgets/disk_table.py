"""The disk list: one row per disk, then one indented row per partition.

Row keys are "disk:<node>" and "part:<node>:<number>" so a screen can tell which disk the
cursor is on whichever row it sits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

from recovery.units import human_size

if TYPE_CHECKING:  # the first frame, an empty table, is drawn before the model loads
    from recovery.model.disk import Disk, DiskPartition

DISK_KEY = "disk:"
PART_KEY = "part:"


SHORT_BUS = {"nvme": "NVMe", "sata": "SATA", "ata": "ATA", "usb": "USB", "virtio": "virtio",
             "scsi": "SCSI", "mmc": "SD", "loop": "loop", "file": "file"}
# Widths for an 80-column console; the notes column takes what is left.
WIDTHS = {"disk": 7, "what": 20, "id": 14, "bus": 6, "size": 9, "notes": 12}


def fit(text: str, width: int, keep_end: bool = False) -> str:
    """Cut to `width`; serials keep their end because that is what gets typed to confirm."""
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1):] if keep_end else text[:width - 1] + "…"


def disk_notes(disk: Disk) -> str:
    notes = []
    if disk.health.needs_care:
        notes.append(disk.health.label())
    if disk.holds_live_medium:
        notes.append("LIVE MEDIUM")
    if disk.read_only:
        notes.append("read-only")
    if disk.is_mounted:
        notes.append("mounted")
    if disk.removable:
        notes.append("removable")
    return ", ".join(notes)


def partition_notes(partition: DiskPartition, warnings: tuple[str, ...] = ()) -> str:
    notes = list(warnings)
    if partition.fs_type.lower() == "bitlocker" and not any("BitLocker" in n for n in notes):
        notes.append("BitLocker")
    if partition.mountpoints:
        notes.append("mounted")
    return ", ".join(notes)


class DiskTable(DataTable[str | Text]):
    """Disks and their partitions; `warnings` maps (node, number) to probe warnings."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        for title, key in [("Disk", "disk"), ("Model / file system", "what"),
                           ("Serial / label", "id"), ("Bus", "bus"), ("Size", "size"),
                           ("Notes", "notes")]:
            # As Text: a str title is parsed as markup, which loads rich's emoji table
            # (a cold read and a large module under TCG) before the first frame.
            self.add_column(Text(title), width=WIDTHS[key], key=key)

    def show(self, disks: list[Disk],
             warnings: dict[tuple[str, int], tuple[str, ...]] | None = None) -> None:
        warnings = warnings or {}
        keep = self.cursor_row
        self.clear()
        for disk in (d for d in disks if not is_live_system_loop(d)):
            self.add_row(Text(disk.node.name, style="bold"),
                         fit(disk.model or "(no model)", WIDTHS["what"]),
                         fit(disk.serial or "-", WIDTHS["id"], keep_end=True),
                         SHORT_BUS.get(disk.bus, disk.bus), human_size(disk.size),
                         Text(disk_notes(disk), style=_notes_style(disk)),
                         key=f"{DISK_KEY}{disk.node}")
            for part in disk.partitions:
                notes = partition_notes(part, warnings.get((str(disk.node), part.number), ()))
                self.add_row(f"  {part.number}", fit(part.fs_type or "?", WIDTHS["what"]),
                             fit(part.fs_label or part.part_name or "", WIDTHS["id"]), "",
                             human_size(part.size), notes,
                             key=f"{PART_KEY}{disk.node}:{part.number}")
        if disks:
            self.move_cursor(row=min(keep, self.row_count - 1))

    def selected_key(self) -> str:
        if self.row_count == 0:
            return ""
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value or ""

    def selected_node(self) -> Path | None:
        """The disk under the cursor (a partition row selects its disk)."""
        key = self.selected_key()
        if key.startswith(DISK_KEY):
            return Path(key.removeprefix(DISK_KEY))
        if key.startswith(PART_KEY):
            return Path(key.removeprefix(PART_KEY).rsplit(":", 1)[0])
        return None


def is_live_system_loop(disk: Disk) -> bool:
    """The loop device live-boot reads the running system from (the squashfs on the
    medium): part of this program, never a disk to work on, so the list leaves it out; the
    medium's own disk (a USB stick) stays, marked LIVE MEDIUM."""
    return disk.bus == "loop" and disk.holds_live_medium


def _notes_style(disk: Disk) -> str:
    return "bold red" if disk.health.is_failing else "bold"


def health_line(disk: Disk) -> str:
    """'health FAILING: Current pending sectors: 12', empty before it was read."""
    from recovery.model.health import NOT_CHECKED
    return "" if disk.health == NOT_CHECKED else f"health {disk.health.describe()}"


def row_details(key: str, disks: list[Disk]) -> str:
    """The full facts of the highlighted row, which the columns had to cut short."""
    for disk in disks:
        if key == f"{DISK_KEY}{disk.node}":
            where = ", ".join(disk.all_mountpoints)
            health = health_line(disk)
            return (disk.describe() + (f"; mounted at {where}" if where else "")
                    + (f"; {health}" if health else ""))
        for part in disk.partitions:
            if key == f"{PART_KEY}{disk.node}:{part.number}":
                node = part.node or f"{disk.node} partition {part.number}"
                text = (f"{node}: {part.fs_type or 'unknown'} '{part.fs_label}' "
                        f"{human_size(part.size)} at offset {part.start}")
                if part.mountpoints:
                    text += f"; mounted at {', '.join(part.mountpoints)}"
                return text
    return ""
