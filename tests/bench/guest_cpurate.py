"""Run in the bench's QEMU guest (copied onto the credentials stick): how many MB each step
of a job costs per CPU-second on this CPU, one thread, no share involved (issue 13: is
0.9x of cat reachable at all on an emulated CPU?). Prints one line `CPURATE {json}`.

    python3 cpurate.py DEVICE OFFSET   # DEVICE read with O_DIRECT; OFFSET: compressible data
"""

from __future__ import annotations

import json
import mmap
import os
import resource
import sys
import time
from collections.abc import Callable

import blake3
import zstandard

from recovery.store import frames

MiB = 1 << 20
CHUNK = 4 * MiB
FLAGS = ("sse2", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "avx512f", "avx512vl")


def rate(name: str, work: Callable[[], object], seconds: float = 3.0) -> dict[str, object]:
    """MB of 4 MiB chunks per CPU-second of this thread (and per wall second)."""
    work()
    count, cpu0, wall0 = 0, time.thread_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        work()
        count += 1
    cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
    mb = count * CHUNK / 1e6
    return {"what": name, "MB": round(mb, 1), "MB_per_cpu_s": round(mb / cpu, 1),
            "MB_per_s": round(mb / wall, 1)}


def cpuinfo() -> dict[str, object]:
    with open("/proc/cpuinfo") as info:
        first = info.read().split("\n\n")[0]
    fields = {key.strip(): value.strip() for key, value in
              (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    flags = fields.get("flags", "").split()
    return {"model": fields.get("model name", ""), "flags": [f for f in FLAGS if f in flags]}


def direct_read(device: str, total: int) -> dict[str, object]:
    """The disk read as a capture does it: 4 MiB O_DIRECT reads into one buffer."""
    buffer = mmap.mmap(-1, CHUNK)
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
    before, wall0 = resource.getrusage(resource.RUSAGE_THREAD), time.monotonic()
    done = 0
    while done < total and (got := os.preadv(fd, [buffer], done)) > 0:
        done += got
    wall, after = time.monotonic() - wall0, resource.getrusage(resource.RUSAGE_THREAD)
    os.close(fd)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"what": "O_DIRECT read of the disk, 4 MiB", "MB": round(done / 1e6),
            "MB_per_cpu_s": round(done / 1e6 / max(cpu, 1e-3), 1),
            "MB_per_s": round(done / 1e6 / wall, 1)}


def main() -> None:
    device, offset = sys.argv[1], int(sys.argv[2])
    random = os.urandom(CHUNK)
    with open(device, "rb") as disk:
        disk.seek(offset)
        text = disk.read(CHUNK)
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=True)
    frame, target = bytes(frames.raw_frame(random)), bytearray(CHUNK)
    decompressor = zstandard.ZstdDecompressor()

    def decompress() -> None:  # restore's path for a raw frame
        reader, view, done = decompressor.stream_reader(frame), memoryview(target), 0
        while done < CHUNK and (got := reader.readinto(view[done:])):
            done += got

    def tmpfs_write() -> None:
        with open("/tmp/cpurate.bin", "wb") as out:
            out.write(random)
        os.unlink("/tmp/cpurate.bin")

    rows = [rate("BLAKE3 (max_threads=1)", lambda: blake3.blake3(random, max_threads=1)),
            rate("zstd sample test, incompressible", lambda: frames.incompressible(
                random, compressor)),
            rate("raw zstd frame, joined (the copy made before)",
                 lambda: bytes(frames.raw_frame(random))),
            rate("raw zstd frame as pieces (now)", lambda: frames.raw_frame(random)),
            rate("memory copy", lambda: bytes(target)),
            rate("zstd -1, incompressible", lambda: compressor.compress(random)),
            rate(f"zstd -1, disk data (ratio {len(compressor.compress(text)) / CHUNK:.2f})",
                 lambda: compressor.compress(text)),
            rate("restore: raw frame into the buffer (zstd reader)", decompress),
            rate("write into the page cache (tmpfs)", tmpfs_write),
            direct_read(device, 256 * MiB)]
    print("CPURATE " + json.dumps({"cpu": cpuinfo(), "rates": rows}))


if __name__ == "__main__":
    main()
