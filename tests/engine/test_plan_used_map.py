"""A capture reads the used blocks its plan mapped: a file system written between plan and
execute (another console mounted it, a technician copied a file onto it) is refused with
exit 36, not captured with a stale map that leaves the new clusters out (issue #12)."""

from __future__ import annotations

import os
from pathlib import Path

from recovery.demo.disk import DemoDisk
from recovery.engine.capture import CaptureRequest, execute_capture, plan_capture
from recovery.errors import DiskChangedError
from recovery.store.objects import ChunkStore
from recovery.sys import losetup, ntfs3g
from recovery.sys.run import run
from recovery.units import MiB


def test_capture_refused_when_a_volume_was_written_after_the_plan(
        small_disk: DemoDisk, tmp_path: Path) -> None:
    copy = tmp_path / "copy.img"
    run(["cp", "--sparse=always", str(small_disk.path), str(copy)])
    store = tmp_path / "store"
    volume = small_disk.windows
    with losetup.loop_device(copy, read_only=True) as source:
        plan = plan_capture(CaptureRequest(source, store))
        planned = next(p for p in plan.selected if p.partition.number == volume.number)
        # Written through ntfs-3g on its own loop device, as another console would.
        with ntfs3g.mount(copy, volume.start, tmp_path / "c", True, size=volume.size) as root:
            (root / "written-later.bin").write_bytes(os.urandom(8 * MiB))
        try:
            execute_capture(plan)
        except DiskChangedError as error:
            refused = error
        else:
            raise AssertionError("a capture with a stale used-block map was not refused")
        assert refused.code == 36 and refused.kind == "disk-changed"
        assert "was written since the capture was planned" in refused.title
        assert f"partition {volume.number}:" in refused.title
        assert "plan the capture again" in refused.action
        assert list(ChunkStore.open(store, create=True).list_images()) == []

        # Planned again, the map includes the new file and the capture goes ahead.
        again = plan_capture(CaptureRequest(source, store))
        now = next(p for p in again.selected if p.partition.number == volume.number)
        assert now.volume.used_bytes >= planned.volume.used_bytes + 8 * MiB
        summary = execute_capture(again)
    assert [i.name for i in ChunkStore.open(store).list_images()] == [summary.image]
