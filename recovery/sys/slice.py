"""A read-only file object over a byte range of a BlockDevice.

libfsntfs / libvshadow (pyfsntfs, pyvshadow) read volumes through Python file objects;
this lets them read a partition inside a whole disk without a loop device or a mount.
"""

from __future__ import annotations

import io
import os

from recovery.sys.blockdev import BlockDevice


class RandomAccessFile(io.RawIOBase):
    """A read-only, seekable file object over `read_at(offset, length)`, `size` bytes."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.position = 0

    def read_at(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def get_size(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        remaining = max(0, self.size - self.position)
        length = remaining if size is None or size < 0 else min(size, remaining)
        if length == 0:
            return b""
        data = self.read_at(self.position, length)
        self.position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)


class DeviceSlice(RandomAccessFile):
    def __init__(self, device: BlockDevice, offset: int, size: int) -> None:
        super().__init__(size)
        self.device = device
        self.offset = offset

    def read_at(self, offset: int, length: int) -> bytes:
        return self.device.read_at(self.offset + offset, length)
