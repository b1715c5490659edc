"""Capture and restore speed against partclone | zstd on the same 2 GiB NTFS volume.

Run with `python3 -m pytest -m bench -s tests/bench/test_bench_engine.py`. It prints the
ratios and writes them to docs/benchmarks.md; it asserts correctness, never time.
Page caches are dropped before every timed step so no tool reads from memory.

partclone | zstd ends with its image in the page cache, and partclone's restore with the
target's writes there too; ours are on the medium when they end (chunk files fsynced before
they are named, the restored disk flushed before it is read back). So each of their steps is
also timed until its output is on the medium (`sync FILE`, an fsync of that file or device
only, taken right after): both ratios are reported, the target is judged on the synced one.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from recovery.demo.disk import DiskSpec
from recovery.engine.capture import CaptureRequest, capture
from recovery.engine.capture_result import CaptureSummary
from recovery.engine.restore import RestoreRequest, restore
from recovery.engine.roles import BASIC_DATA
from recovery.engine.table import write_table
from recovery.model.layout import PartitionTable, TablePartition
from recovery.sys import losetup, ntfs3g
from recovery.units import GiB, MiB

ROOT = Path(__file__).resolve().parents[2]
VOLUME = 2 * GiB
START = 1 * MiB
BEGIN, END = "<!-- latest bench run: begin -->", "<!-- latest bench run: end -->"


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _timed(step: Callable[[], object]) -> float:
    _drop_caches()
    started = time.monotonic()
    step()
    return time.monotonic() - started


def _timed_synced(step: Callable[[], object], output: Path) -> tuple[float, float]:
    """(seconds until `step` returned, seconds until its `output` was also on the medium)."""
    _drop_caches()
    started = time.monotonic()
    step()
    returned = time.monotonic() - started
    _shell(f"sync {output}")
    return returned, time.monotonic() - started


def _shell(command: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _build_disk(path: Path) -> TablePartition:
    """One 2 GiB NTFS volume, about 65 % used: half incompressible, half text-like."""
    with open(path, "wb") as handle:
        handle.truncate(VOLUME + 4 * MiB)
    part = TablePartition(1, START, VOLUME, BASIC_DATA, "6F3D4E1A-0C55-4B7E-9A27-3C8D2B1E5F60",
                          "Basic data partition")
    write_table(path, PartitionTable("gpt", 512, VOLUME + 4 * MiB,
                                     "0E4C3B5A-7D21-4F8E-B6A9-1C2D3E4F5A6B", (part,),
                                     first_usable_lba=34,
                                     last_usable_lba=(VOLUME + 4 * MiB) // 512 - 34))
    ntfs3g.mkntfs(path, START, VOLUME, label="Windows")
    rng = random.Random(DiskSpec().seed)
    with tempfile.TemporaryDirectory() as mnt, \
            ntfs3g.mount(path, START, Path(mnt), read_write=True, size=VOLUME):
        for number in range(80):
            size = 16 * MiB + rng.randrange(4 * MiB)
            if number % 2:
                line = f"{number} log line: service started, driver loaded OK\n".encode()
                content = (line * (size // len(line) + 1))[:size]
            else:
                content = rng.randbytes(size)
            (Path(mnt) / f"file{number:03d}.bin").write_bytes(content)
    return part


@pytest.mark.bench
def test_capture_and_restore_against_partclone(tmp_path: Path) -> None:
    """PAIRS interleaved pairs each of capture and restore: the machine is shared, so a
    ratio is taken within a pair (same moment, same load) and the spread is reported."""
    disk = tmp_path / "disk.img"
    part = _build_disk(disk)
    used = ntfs3g.ntfsclone_used_bytes(disk, START, VOLUME)
    original = ntfs3g.ntfsclone_image_hash(disk, START, VOLUME)
    results: dict[str, float] = {"used_bytes": float(used)}
    runs: dict[str, list[float]] = {key: [] for key in PAIR_KEYS}
    load = [_load()]
    pc_image, store = tmp_path / "partclone.zst", tmp_path / "store"
    for pair in range(PAIRS):
        shutil.rmtree(store, ignore_errors=True)
        pc_image.unlink(missing_ok=True)
        with losetup.loop_device(disk, offset=START, size=VOLUME, read_only=True) as volume:
            _append(runs, "partclone_capture", _timed_synced(lambda: _shell(
                f"partclone.ntfs -c -s {volume} -o - | zstd -1 -T0 -q -o {pc_image}"), pc_image))
        runs["our_capture"].append(
            _timed(lambda: capture(CaptureRequest(disk, store, name="one"))))
        if pair == 0:
            _repeat_captures(disk, store, results)
        _restores(disk, tmp_path / "target.img", pc_image, store, original, runs)
        load.append(_load())
    results["partclone_size"] = pc_image.stat().st_size
    for key, values in runs.items():
        results[key] = statistics.median(values)
    _report(results, runs, load, part)


PAIRS = 3
PAIR_KEYS = ("partclone_capture", "partclone_capture_synced", "our_capture",
             "partclone_restore", "partclone_restore_synced", "our_restore_verify")


def _append(runs: dict[str, list[float]], key: str, times: tuple[float, float]) -> None:
    runs[key].append(times[0])
    runs[f"{key}_synced"].append(times[1])


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _repeat_captures(disk: Path, store: Path, results: dict[str, float]) -> None:
    second: list[CaptureSummary] = []
    results["our_second_capture"] = _timed(
        lambda: second.append(capture(CaptureRequest(disk, store, name="two"))))
    results["second_capture_bytes_read"] = second[0].stats.bytes_read  # the spot check
    assert second[0].partitions[0].reused_from == "one"
    results["our_second_capture_read_all"] = _timed(
        lambda: capture(CaptureRequest(disk, store, name="three", read_all=True)))
    results["our_size"] = sum(f.stat().st_size for f in (store / "chunks").rglob("*")
                              if f.is_file())


def _restores(disk: Path, target: Path, pc_image: Path, store: Path, original: str,
              runs: dict[str, list[float]]) -> None:
    shutil.copyfile(disk, target)  # same size; contents replaced by both restores
    with losetup.loop_device(target, offset=START, size=VOLUME) as volume:
        _append(runs, "partclone_restore", _timed_synced(lambda: _shell(
            f"zstd -d -q -c {pc_image} | partclone.ntfs -r -s - -o {volume}"), volume))
    assert ntfs3g.ntfsclone_image_hash(target, START, VOLUME) == original
    _zero(target)
    runs["our_restore_verify"].append(
        _timed(lambda: restore(RestoreRequest(store, "one", target, confirmed=True))))
    assert ntfs3g.ntfsclone_image_hash(target, START, VOLUME) == original
    target.unlink()


def _zero(path: Path) -> None:
    """Overwrite the target with zeros so our restore must write everything again.

    Zeros written, not a hole punched: partclone restored onto the allocated blocks of a
    copy, and a real disk has no holes. Writing into a hole makes ext4 allocate blocks
    under the file's lock for every write (measured: 0.2-0.3 s more on this restore).
    """
    zeros = bytes(4 * MiB)
    with open(path, "r+b") as handle:
        for _ in range((VOLUME + 4 * MiB) // len(zeros)):
            handle.write(zeros)
        handle.truncate(VOLUME + 4 * MiB)


def _report(r: dict[str, float], runs: dict[str, list[float]], load: list[str],
            part: TablePartition) -> None:
    used_mb = r["used_bytes"] / 1e6
    rows = [
        ("capture vs partclone\\|zstd, then sync of its image (median of the pairs)",
         r["our_capture"], r["partclone_capture_synced"], 0.25),
        ("capture vs partclone\\|zstd, its image still in the page cache (median)",
         r["our_capture"], r["partclone_capture"], None),
        ("restore + read-back verify vs restore, then sync of the target (median)",
         r["our_restore_verify"], r["partclone_restore_synced"], 0.25),
        ("restore + read-back verify vs restore, its writes in the page cache (median)",
         r["our_restore_verify"], r["partclone_restore"], None),
        ("second capture of the unchanged disk vs first (default: reused after a spot check)",
         r["our_second_capture"], r["our_capture"], 0.10),
        ("second capture vs first with --read-all (reads everything)",
         r["our_second_capture_read_all"], r["our_capture"], None),
        ("store size vs partclone\\|zstd -1", r["our_size"], r["partclone_size"], 1.02),
    ]
    lines = [f"2 GiB NTFS volume, {used_mb:.0f} MB used (half incompressible, half text),",
             "GPT disk image on this machine kind (2 cores), page cache dropped before each",
             "step. Generated by `python3 -m pytest -m bench -s tests/bench/test_bench_engine.py`.",
             "", "| measure | ours | theirs | ratio | target |", "| --- | --- | --- | --- | --- |"]
    for name, ours, theirs, target in rows:
        unit = "MB" if "size" in name else "s"
        scale = 1e6 if unit == "MB" else 1.0
        ratio = ours / theirs if theirs else 0.0
        goal = f"<= {target}x" if target else "-"
        lines.append(f"| {name} | {ours / scale:.2f} {unit} | {theirs / scale:.2f} {unit} | "
                     f"{ratio:.2f}x | {goal} |")
    lines += ["", "Each pair (theirs, then ours, back to back; theirs until synced / until "
              "it returned):", ""]
    for pair in range(len(runs["our_capture"])):
        lines.append(f"- capture {_pair(runs, 'our_capture', 'partclone_capture', pair)}; "
                     "restore + read-back "
                     f"{_pair(runs, 'our_restore_verify', 'partclone_restore', pair)}")
    lines += ["", f"Load average (1, 5, 15 min) at the start and after each pair: "
              f"{'; '.join(load)}.",
              "", f"Used data rate: our capture {used_mb / r['our_capture']:.0f} MB/s, "
              f"partclone|zstd {used_mb / r['partclone_capture']:.0f} MB/s (synced "
              f"{used_mb / r['partclone_capture_synced']:.0f} MB/s); our restore "
              f"with verify {used_mb / r['our_restore_verify']:.0f} MB/s, partclone restore "
              f"{used_mb / r['partclone_restore']:.0f} MB/s (synced "
              f"{used_mb / r['partclone_restore_synced']:.0f} MB/s).",
              "", f"The default repeat capture read {r['second_capture_bytes_read'] / 1e6:.1f} "
              f"MB (its spot check and the boot areas) of {used_mb:.0f} MB used."]
    text = "\n".join(lines) + "\n"
    print(text)
    _write_latest(ROOT / "docs" / "benchmarks.md", text)


def _pair(runs: dict[str, list[float]], ours: str, theirs: str, pair: int) -> str:
    mine, synced, returned = (runs[key][pair] for key in (ours, f"{theirs}_synced", theirs))
    return (f"{mine:.2f} s / ({synced:.2f} s | {returned:.2f} s) = "
            f"{mine / synced:.2f}x | {mine / returned:.2f}x")


def _write_latest(doc: Path, text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the latest run between the markers; the explanations around it stay."""
    old = doc.read_text() if doc.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1]
        doc.write_text(f"{head}{begin}\n{text}{end}{tail}")
    elif old:
        doc.write_text(f"{old}\n{begin}\n{text}{end}\n")
    else:
        doc.write_text(f"# Benchmarks\n\n{begin}\n{text}{end}\n")
