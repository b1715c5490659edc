"""Restore to a target whose writes fail: the error names the target and where it failed.

Needs writes that bypass the page cache (O_DIRECT): buffered writes to a disk succeed into
the cache and the failure only surfaces at the final flush, at offset 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk
from recovery.engine.restore import RestoreRequest, restore
from recovery.engine.verify import verify
from recovery.errors import DeviceIOError
from tests.faults.conftest import (
    CHUNK,
    LoopFactory,
    MountFactory,
    blank_disk,
    offset_in_title,
    used_range_in_middle,
)
from tests.faults.faultyfs import Fault


def test_restore_write_error_names_target_and_offset_then_delta_finishes(
        small_disk: DemoDisk, small_store: Path, mount_faulty: MountFactory,
        loop_over: LoopFactory, tmp_path: Path) -> None:
    faulty = mount_faulty(blank_disk(tmp_path / "target.img", small_disk.table.disk_size))
    target = loop_over(faulty.disk)
    bad_start, bad_end = used_range_in_middle(small_disk)
    faulty.arm(Fault("write", bad_start, bad_end))

    with pytest.raises(DeviceIOError) as caught:
        restore(RestoreRequest(small_store, "base", target, confirmed=True))
    assert str(target) in caught.value.title
    # An O_DIRECT write fails whole: the offset is where the failing write began.
    assert bad_start - CHUNK <= offset_in_title(caught.value) < bad_end
    assert faulty.state().faults[0].hits > 0

    faulty.clear()
    resumed = restore(RestoreRequest(small_store, "base", target, delta=True, confirmed=True))
    assert resumed.verified and resumed.chunks_skipped > 0 and resumed.chunks_written > 0
    assert verify(small_store, "base", target).ok


