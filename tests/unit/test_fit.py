"""The layout fitter: pure arithmetic on partition tables, no root needed."""

from __future__ import annotations

import pytest

from recovery.engine.fit import FitRequest, fit_layout, minimum_disk_size, system_minimum
from recovery.errors import Hint, TargetTooSmallError, UnsupportedLayoutError, UsageError
from recovery.model.layout import PartitionTable, TablePartition
from recovery.units import GiB, MiB

GPT_BACKUP = 33 * 512


def gpt_table(disk: int = 2 * GiB) -> PartitionTable:
    recovery_size = 300 * MiB
    parts = (
        TablePartition(1, 1 * MiB, 100 * MiB, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                       guid="11111111-0000-4000-8000-000000000001", name="EFI"),
        TablePartition(2, 101 * MiB, 16 * MiB, "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
                       guid="11111111-0000-4000-8000-000000000002", name="MSR"),
        TablePartition(3, 117 * MiB, disk - 118 * MiB - recovery_size,
                       "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
                       guid="11111111-0000-4000-8000-000000000003", name="Basic data"),
        TablePartition(4, disk - 1 * MiB - recovery_size, recovery_size,
                       "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
                       guid="11111111-0000-4000-8000-000000000004", name="Recovery",
                       attributes=(1 << 63) | 1))
    return PartitionTable("gpt", 512, disk, "AAAAAAAA-0000-4000-8000-000000000000", parts,
                          first_usable_lba=34, last_usable_lba=disk // 512 - 34)


def mbr_table(disk: int = 2 * GiB) -> PartitionTable:
    parts = (TablePartition(1, 1 * MiB, 100 * MiB, "07", bootable=True),
             TablePartition(2, 101 * MiB, disk - 101 * MiB - 500 * MiB, "07"),
             TablePartition(3, disk - 500 * MiB, 500 * MiB, "27"))
    return PartitionTable("mbr", 512, disk, "1234ABCD", parts, entry_count=4, entry_size=16)


def fit(table: PartitionTable, target: int, **kwargs: object) -> object:
    return fit_layout(FitRequest(table, target, 3 if table.scheme == "gpt" else 2,
                                 system_needed=400 * MiB, **kwargs))  # type: ignore[arg-type]


def test_shrink_keeps_head_moves_tail_to_end_and_keeps_identifiers() -> None:
    table = gpt_table()
    layout = fit_layout(FitRequest(table, 1536 * MiB, 3, system_needed=400 * MiB))
    new = {p.number: p for p in layout.table.partitions}
    old = {p.number: p for p in table.partitions}
    assert layout.mode == "fit" and layout.system == 3
    for number in (1, 2):
        assert new[number] == old[number]
    assert new[4].size == old[4].size
    assert new[4].end <= layout.table.last_usable_lba * 512 + 512
    assert new[4].end == (1536 * MiB - GPT_BACKUP) // MiB * MiB
    assert new[3].start == old[3].start and new[3].end == new[4].start
    for number in old:
        assert new[number].start % MiB == 0
        assert (new[number].guid, new[number].type_id, new[number].name,
                new[number].attributes) == (old[number].guid, old[number].type_id,
                                            old[number].name, old[number].attributes)
    assert layout.table.disk_id == table.disk_id
    assert layout.table.disk_size == 1536 * MiB
    assert layout.table.last_usable_lba == (1536 * MiB - GPT_BACKUP) // 512 - 1
    assert layout.change(3).action() == "shrunk" and layout.change(4).action() == "moved"
    assert [c.number for c in layout.moved] == [4]


def test_grow_fills_the_disk() -> None:
    layout = fit_layout(FitRequest(gpt_table(), 4 * GiB, 3, system_needed=400 * MiB))
    assert layout.change(3).action() == "grown"
    assert layout.change(3).new_size > 3 * GiB
    assert layout.table.partitions[3].end == (4 * GiB - GPT_BACKUP) // MiB * MiB


def test_same_size_target_keeps_the_layout_by_default() -> None:
    table = gpt_table()
    layout = fit_layout(FitRequest(table, table.disk_size, 3, system_needed=400 * MiB))
    assert layout.mode == "same" and layout.table == table
    assert not layout.moved and layout.resized is None


def test_layout_same_keeps_exact_sizes_on_a_larger_disk() -> None:
    table = gpt_table()
    layout = fit_layout(FitRequest(table, 4 * GiB, 3, system_needed=400 * MiB, mode="same"))
    assert layout.table.partitions == table.partitions
    assert layout.table.disk_size == 4 * GiB


def test_layout_same_refuses_a_smaller_disk() -> None:
    with pytest.raises(TargetTooSmallError, match="larger disk") as caught:
        fit_layout(FitRequest(gpt_table(), 1536 * MiB, 3, system_needed=400 * MiB,
                              mode="same"))
    assert caught.value.hint is Hint.FIT_LAYOUT


def test_system_size_leaves_free_space_after_windows() -> None:
    layout = fit_layout(FitRequest(gpt_table(), 4 * GiB, 3, system_needed=400 * MiB,
                                   system_size=1 * GiB))
    new = {p.number: p for p in layout.table.partitions}
    assert new[3].size == 1 * GiB
    assert new[4].end == (4 * GiB - GPT_BACKUP) // MiB * MiB


def test_system_size_below_the_minimum_is_refused() -> None:
    with pytest.raises(UsageError, match="below what Windows needs"):
        fit_layout(FitRequest(gpt_table(), 4 * GiB, 3, system_needed=400 * MiB,
                              system_size=500 * MiB))


def test_system_size_too_large_for_the_disk_is_refused() -> None:
    with pytest.raises(TargetTooSmallError, match="does not fit"):
        fit_layout(FitRequest(gpt_table(), 2 * GiB, 3, system_needed=400 * MiB,
                              system_size=3 * GiB))


def test_too_small_target_gives_the_minimum() -> None:
    request = FitRequest(gpt_table(), 600 * MiB, 3, system_needed=400 * MiB)
    minimum = minimum_disk_size(request)
    # ESP + MSR + Windows' minimum + Recovery + GPT backup, MiB-aligned
    assert minimum == 117 * MiB + system_minimum(400 * MiB) + 300 * MiB + GPT_BACKUP
    with pytest.raises(TargetTooSmallError) as caught:
        fit_layout(request)
    assert f"({minimum} bytes)" in caught.value.title
    assert fit_layout(FitRequest(gpt_table(), minimum, 3, system_needed=400 * MiB))
    with pytest.raises(TargetTooSmallError):
        fit_layout(FitRequest(gpt_table(), minimum - 1, 3, system_needed=400 * MiB))


def test_margin_is_a_fifth_of_the_need_within_bounds() -> None:
    assert system_minimum(100 * MiB) == 356 * MiB
    assert system_minimum(40 * GiB) == 48 * GiB
    assert system_minimum(400 * GiB) == 420 * GiB


def test_mbr_recovery_moves_to_the_end() -> None:
    layout = fit_layout(FitRequest(mbr_table(), 1200 * MiB, 2, system_needed=300 * MiB))
    new = {p.number: p for p in layout.table.partitions}
    assert new[1] == mbr_table().partitions[0]
    assert new[3].end == 1200 * MiB and new[3].type_id == "27"
    assert new[2].end == new[3].start
    assert layout.table.disk_id == "1234ABCD"


def test_no_resizable_system_volume_means_same_layout_only() -> None:
    with pytest.raises(UnsupportedLayoutError, match="exact layout") as caught:
        fit_layout(FitRequest(gpt_table(), 4 * GiB, None))
    assert caught.value.hint is Hint.LAYOUT_SAME
