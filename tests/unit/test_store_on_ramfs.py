"""A store on a file system that refuses O_DIRECT only after creating the file (ramfs;
tmpfs before Linux 6.6, the live image's kernel 6.1: a store in the live system's RAM,
the network bench's local baseline, failed with exit 20 "recovery-store.yaml: File
exists"). Real ramfs mount: every file is written through the page cache instead."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from recovery.store.objects import ChunkStore
from recovery.sys.directio import write_file_direct


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "ramfs"
    point.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_a_refused_direct_write_leaves_no_file_and_a_store_works(ramfs: Path) -> None:
    assert write_file_direct(ramfs / "probe", b"x" * 4096) is False
    assert list(ramfs.iterdir()) == []
    store = ChunkStore.open(ramfs / "store", create=True)
    data = os.urandom(1 << 20)
    digest = blake3.blake3(data).digest()
    assert store.put(digest, store.compress(data), batched=True)
    store.sync()
    assert store.get(digest) == data
    assert ChunkStore.open(ramfs / "store").get(digest) == data
