"""A chunk's buffer is in 2 MiB huge pages, so a direct request reaches the disk as a few
large segments rather than one per 4 KiB page (docs/benchmarks.md, "Issue 9, eighth pass")."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import pytest

from recovery.sys.directio import ALIGN, HUGE_PAGE, thread_buffer
from recovery.units import MiB

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _huge_kib_at(address: int) -> int:
    """AnonHugePages of the mapping of this process that holds `address`."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            start, end = (int(value, 16) for value in head.split("-"))
            inside = start <= address < end
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    return 0


def _in_new_thread(size: int, slot: str) -> tuple[int, int, int]:
    """(address, length, huge KiB) of a fresh thread's buffer after it was filled once."""
    found: list[tuple[int, int, int]] = []

    def fill() -> None:
        view = thread_buffer(size, slot)
        view[:] = b"\x01" * len(view)  # a page is only allocated when touched
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
        found.append((address, len(view), _huge_kib_at(address)))
        del view

    worker = threading.Thread(target=fill)
    worker.start()
    worker.join()
    return found[0]


@pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(),
                    reason="this kernel offers no transparent huge pages")
def test_a_chunk_buffer_begins_on_a_huge_page_and_is_backed_by_them() -> None:
    address, length, huge_kib = _in_new_thread(4 * MiB + 2 * ALIGN, "test-chunk")
    assert length >= 4 * MiB + 2 * ALIGN
    assert address % HUGE_PAGE == 0
    assert huge_kib >= 4 * MiB // 1024  # the whole 4 MiB chunk; the 8 KiB tail may not be


def test_a_small_buffer_is_page_aligned_and_reused_by_its_thread() -> None:
    address, length, _huge = _in_new_thread(3 * ALIGN + 1, "test-small")
    assert address % ALIGN == 0 and length >= 3 * ALIGN + 1
    first = thread_buffer(ALIGN, "test-reuse")
    again = thread_buffer(ALIGN, "test-reuse")
    assert ctypes.addressof(ctypes.c_char.from_buffer(first)) == \
        ctypes.addressof(ctypes.c_char.from_buffer(again))
