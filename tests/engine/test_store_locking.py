"""Many technicians on one store: real `recovery` processes capturing, restoring, deleting
and pruning at the same time (recovery.store.locks, docs/store-locking.md).

A job is paused (SIGSTOP) while it holds its lock and has claimed its image, the other job
runs to the end, then the first one is continued: the overlap is certain, not timed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from recovery.demo.disk import DemoDisk
from recovery.errors import StoreLockedError
from recovery.store import locks
from recovery.store.objects import ChunkStore

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: object, check: bool = True) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "recovery", *map(str, argv), "--json"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    document = json.loads(done.stdout) if done.stdout.strip() else {}
    if check:
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.returncode, document


def _env() -> dict[str, str]:
    """Each process is another technician's PC: its own machine job lock
    (recovery.sys.joblock allows one job per PC), the one store shared."""
    return {**os.environ, "PYTHONPATH": str(ROOT),
            "RECOVERY_LOCK_DIR": tempfile.mkdtemp(prefix="recovery-pc-")}


def lock_files(store: Path) -> list[dict[str, Any]]:
    folder = store / "locks"
    found = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            found.append(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError):
            continue  # being replaced right now
    return [item for item in found if isinstance(item, dict)]


@contextmanager
def paused(argv: list[object], store: Path, job: str
           ) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start `recovery ARGV --json`, stop it once it holds a `job` lock naming its image (a
    capture: also once its folder exists); yields (process, image). Continued on exit."""
    process = subprocess.Popen([sys.executable, "-m", "recovery", *map(str, argv), "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env())
    try:
        image = _wait_for_claim(process, store, job)
        os.kill(process.pid, signal.SIGSTOP)
        yield process, image
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)


def _wait_for_claim(process: subprocess.Popen[str], store: Path, job: str) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for item in lock_files(store):
            image = item.get("image") or ""
            if item.get("job") == job and item.get("pid") == process.pid and image and (
                    job != "capture" or (store / "images" / f"{image}.partial").is_dir()):
                return str(image)
        if process.poll() is not None:
            pytest.fail(f"the {job} ended before it could be paused: {process.stderr}")
        time.sleep(0.002)
    pytest.fail(f"the {job} never took its lock")


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    os.kill(process.pid, signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, (stdout, stderr)
    document: dict[str, Any] = json.loads(stdout)
    return document


def digests(store: Path, image: str) -> set[bytes]:
    manifest, index = ChunkStore.open(store).load_image(image)
    return index.stored_digests() | {bytes.fromhex(a.digest) for a in manifest.raw_areas}


def chunk_files(store: Path) -> set[bytes]:
    return {bytes.fromhex(path.name) for path in (store / "chunks").glob("*/*")
            if not path.name.startswith(".")}


@pytest.fixture
def store_copy(small_store: Path, tmp_path: Path) -> Path:
    """A private copy of the engine tests' store holding image 'base' of small_disk."""
    copy = tmp_path / "store"
    shutil.copytree(small_store, copy)
    return copy


def test_same_pc_captured_twice_at_once_gives_two_images_sharing_chunks(
        small_disk: DemoDisk, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with paused(["capture", small_disk.path, "--store", store], store, "capture") as (first,
                                                                                     name):
        # The paused capture's folder is incomplete and of the same disk: the second one
        # must not resume (and share) it while its job is alive.
        _, second = cli("capture", small_disk.path, "--store", store)
        assert second["image"] != name
    first_result = finish(first)
    assert first_result["image"] == name
    images = {i["name"]: i for i in cli("images", "--store", store)[1]["images"]}
    assert set(images) == {name, second["image"]}
    assert all(image["state"] == "complete" for image in images.values())
    both = digests(store, name)
    assert both == digests(store, second["image"])
    assert chunk_files(store) == both  # every chunk stored once, none left over
    # The one that finished second found the chunks already there.
    assert first_result["chunks_reused"] > 0
    for image in images:
        assert cli("verify", "--store", store, image)[1]["ok"]
    assert lock_files(store) == []


def test_two_pcs_captured_into_one_store_at_once(small_disk: DemoDisk, gpt_disk: DemoDisk,
                                                 tmp_path: Path) -> None:
    store = tmp_path / "store"
    with paused(["capture", small_disk.path, "--store", store, "--name", "pc-a"], store,
                "capture") as (first, _):
        cli("capture", gpt_disk.path, "--store", store, "--name", "pc-b")
    finish(first)
    assert chunk_files(store) == digests(store, "pc-a") | digests(store, "pc-b")
    for image in ("pc-a", "pc-b"):
        assert cli("verify", "--store", store, image)[1]["ok"]


def test_restore_while_another_pc_is_captured(store_copy: Path, small_disk: DemoDisk,
                                              gpt_disk: DemoDisk, tmp_path: Path) -> None:
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(small_disk.path.stat().st_size)
    with paused(["capture", gpt_disk.path, "--store", store_copy, "--name", "other-pc"],
                store_copy, "capture") as (capturing, _):
        cli("restore", "--store", store_copy, "base", target, "--yes")
    finish(capturing)
    assert cli("verify", "--store", store_copy, "base", "--target", target)[1]["ok"]
    assert cli("verify", "--store", store_copy, "other-pc")[1]["ok"]


def test_prune_and_delete_wait_for_a_running_capture(store_copy: Path,
                                                     gpt_disk: DemoDisk) -> None:
    with paused(["capture", gpt_disk.path, "--store", store_copy, "--name", "new"],
                store_copy, "capture") as (capturing, _):
        code, refused = cli("prune", "--store", store_copy, "--wait", "0", check=False)
        assert code == StoreLockedError.code and refused["error"]["kind"] == "store-locked"
        assert "capture of image new" in refused["error"]["title"]
        assert f"process {capturing.pid} on {socket.gethostname()}" in refused["error"]["title"]
        code, _ = cli("delete", "--store", store_copy, "base", "--yes", "--wait", "0",
                      check=False)
        assert code == StoreLockedError.code
    finish(capturing)
    cli("prune", "--store", store_copy)
    for image in ("base", "new"):
        assert cli("verify", "--store", store_copy, image)[1]["ok"]


def test_image_being_restored_cannot_be_deleted(store_copy: Path, small_disk: DemoDisk,
                                                tmp_path: Path) -> None:
    target = tmp_path / "target.img"
    with open(target, "wb") as handle:
        handle.truncate(small_disk.path.stat().st_size)
    with paused(["restore", "--store", store_copy, "base", target, "--yes"], store_copy,
                "restore") as (restoring, _):
        code, refused = cli("delete", "--store", store_copy, "base", "--yes", "--wait", "0",
                            check=False)
        assert code == StoreLockedError.code, refused
        assert "restore of image base" in refused["error"]["title"]
    finish(restoring)
    cli("delete", "--store", store_copy, "base", "--yes")
    assert cli("prune", "--store", store_copy)[1]["chunks_removed"] > 0
    assert chunk_files(store_copy) == set()


def test_lock_of_a_killed_job_is_recognised_as_stale(store_copy: Path,
                                                     gpt_disk: DemoDisk) -> None:
    with paused(["capture", gpt_disk.path, "--store", store_copy, "--name", "killed"],
                store_copy, "capture") as (capturing, _):
        capturing.kill()
        capturing.wait()
    assert len(lock_files(store_copy)) == 1  # left behind by the killed process
    cli("delete", "--store", store_copy, "killed", "--yes", "--wait", "0")
    assert lock_files(store_copy) == []
    cli("prune", "--store", store_copy, "--wait", "0")
    assert chunk_files(store_copy) == digests(store_copy, "base")


def test_capture_refused_while_the_store_is_pruned(store_copy: Path,
                                                   small_disk: DemoDisk) -> None:
    with ChunkStore.open(store_copy).locked("prune", exclusive=True):
        code, refused = cli("capture", small_disk.path, "--store", store_copy, check=False)
    assert code == StoreLockedError.code
    assert "locked by prune" in refused["error"]["title"]
    assert not list((store_copy / "images").glob("*.partial"))
    assert [i["name"] for i in cli("images", "--store", store_copy)[1]["images"]] == ["base"]


def _foreign_lock(store: Path, age: float, exclusive: bool = True, machine: str = "") -> Path:
    """A lock written by another PC (other boot id), its file `age` seconds old."""
    info = locks.LockInfo(id="0123456789abcdef", exclusive=exclusive, job="prune", image="",
                          host="recovery", boot_id="another-boot", pid=os.getpid(),
                          process_start=1, created="2026-12-01T10:00:00Z", machine=machine)
    path = store / "locks" / f"{info.id}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(info.__dict__))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_another_pcs_lock_blocks_until_it_ages_out(store_copy: Path) -> None:
    store = ChunkStore.open(store_copy)
    fresh = _foreign_lock(store_copy, age=60)
    with (pytest.raises(StoreLockedError, match=r"prune \(process \d+ on recovery"),
          store.locked("verify", wait_seconds=0)):
        pass
    assert fresh.exists()
    old = _foreign_lock(store_copy, age=locks.STALE_SECONDS + 60)
    with store.locked("verify", wait_seconds=0) as lock:
        assert lock is not None and lock.path.exists()
    assert not old.exists() and lock_files(store_copy) == []


def test_lock_of_an_earlier_boot_of_this_pc_is_stale_at_once(store_copy: Path) -> None:
    """A PC restarted after its share went away mid-capture runs the same capture again:
    its own lock from before the restart (same network cards) must not block it."""
    machine = locks._machine_id()
    assert machine, "this test needs a PC with a network card (/sys/class/net/*/device)"
    store = ChunkStore.open(store_copy)
    other_pc = _foreign_lock(store_copy, age=60, machine="0123456789abcdef")
    with (pytest.raises(StoreLockedError), store.locked("verify", wait_seconds=0)):
        pass
    assert other_pc.exists()
    earlier_boot = _foreign_lock(store_copy, age=60, machine=machine)
    with store.locked("verify", wait_seconds=0) as lock:
        assert lock is not None
    assert not earlier_boot.exists() and lock_files(store_copy) == []


def test_lock_file_of_an_older_version_without_machine_is_read(store_copy: Path) -> None:
    path = _foreign_lock(store_copy, age=60)
    document = yaml.safe_load(path.read_text())
    del document["machine"]
    path.write_text(yaml.safe_dump(document))
    with (pytest.raises(StoreLockedError, match=r"prune \(process"),
          ChunkStore.open(store_copy).locked("verify", wait_seconds=0)):
        pass


def test_shared_locks_coexist_and_a_lost_lock_stops_the_commit(store_copy: Path) -> None:
    store = ChunkStore.open(store_copy)
    other = ChunkStore.open(store_copy)
    with store.locked("verify", image="base") as first, other.locked("restore") as second:
        assert first is not None and second is not None
        assert len(lock_files(store_copy)) == 2
        second.path.unlink()  # as another job does with a lock it judged stale
        with pytest.raises(Exception, match="was removed by another job"):
            other.check_lock()
