from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.demo.disk import DemoDisk, DiskSpec, build_windows_disk
from recovery.engine.capture import CaptureRequest, capture
from recovery.units import MiB

SMALL = DiskSpec(size=640 * MiB, windows_size=300 * MiB, data_bytes=40 * MiB)


@pytest.fixture(scope="session")
def gpt_disk(tmp_path_factory: pytest.TempPathFactory) -> DemoDisk:
    """A Windows-like GPT disk (512-byte sectors) with real hives; do not modify it."""
    return build_windows_disk(tmp_path_factory.mktemp("gpt") / "windows.img")


@pytest.fixture(scope="session")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> DemoDisk:
    return build_windows_disk(tmp_path_factory.mktemp("small") / "small.img", SMALL)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory, small_disk: DemoDisk) -> Path:
    """A store holding image 'base' of small_disk; copy it before damaging it."""
    store = tmp_path_factory.mktemp("store") / "store"
    capture(CaptureRequest(small_disk.path, store, name="base"))
    return store


@pytest.fixture
def sparse_file(tmp_path: Path) -> Iterator[object]:
    def make(name: str, size: int) -> Path:
        path = tmp_path / name
        with open(path, "wb") as handle:
            handle.truncate(size)
        return path

    yield make
