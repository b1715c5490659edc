"""What images (the image writer) and prune need of a store, as a protocol: ChunkStore
(recovery.store.objects) is the one implementation and builds on both modules, so they
name this instead of it (no import cycle, not even for the type checker)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from recovery.store.frames import Frame


class StoreAccess(Protocol):
    @property
    def root(self) -> Path: ...

    @property
    def images_dir(self) -> Path: ...

    @property
    def chunks_dir(self) -> Path: ...

    def has(self, digest: bytes) -> bool: ...

    def compress(self, data: bytes | memoryview) -> bytes | Frame: ...

    def put(self, digest: bytes, compressed: bytes | Frame, batched: bool = False) -> bool: ...

    def ensure_space(self, needed: int) -> None: ...

    def sync(self) -> None: ...

    def check_lock(self) -> None: ...
