"""Run in the bench's QEMU guest (copied onto the credentials stick): a Python module run as
`python3 -m MODULE ...` in this process, with the CPU time of each of its threads recorded
(issue 13: where a job's CPU goes, and whether it keeps both vCPUs busy).

    python3 threadstat.py OUT.json MODULE ARGS...

Each thread started by the job gets its Python name as its kernel name (prctl), so a
sampler of /proc/PID/task/*/comm sees it too. At exit OUT.json holds, per group of threads
(the creating thread's name > the pool's prefix: a write pool and a read-back pool both
name their threads recovery_N), the number of threads, their CPU seconds (thread clock,
exact: read as each thread ends) and when the first started and the last ended (seconds
since this process started); the main thread's CPU before the first worker started (start-
up, plan, re-check), and in all.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import re
import resource
import runpy
import sys
import threading
import time
from types import FrameType

T0 = time.monotonic()
_libc = ctypes.CDLL(None)
_lock = threading.Lock()
_groups: dict[str, dict[str, float]] = {}
_first: dict[str, float] = {}
_run, _start = threading.Thread.run, threading.Thread.start
_MAIN_CLOCK = time.pthread_getcpuclockid(threading.main_thread().ident or 0)


def _group(thread: threading.Thread) -> str:
    return f"{getattr(thread, '_made_by', '?')}>{re.sub(r'_[0-9]+$', '', thread.name)}"


def start(self: threading.Thread) -> None:
    self._made_by = threading.current_thread().name  # type: ignore[attr-defined]
    _start(self)


def run(self: threading.Thread) -> None:
    _libc.prctl(15, self.name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    began = time.monotonic() - T0
    with _lock:
        if not _first:
            _first.update(at=began, main_cpu=time.clock_gettime(_MAIN_CLOCK))
    try:
        _run(self)
    finally:
        ended, cpu = time.monotonic() - T0, time.thread_time()
        with _lock:
            group = _groups.setdefault(_group(self), {"threads": 0, "cpu": 0.0, "max_cpu": 0.0,
                                                      "first": began, "last": ended})
            group["threads"] += 1
            group["cpu"] += cpu
            group["max_cpu"] = max(group["max_cpu"], cpu)
            group["first"], group["last"] = min(group["first"], began), max(group["last"],
                                                                            ended)


_SAMPLE_SECONDS = 0.05
_main_stacks: dict[str, int] = {}  # function -> samples with it on the main thread's stack
_leaves: dict[str, int] = {}  # thread group: innermost Python function -> samples


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}"


def sample() -> None:
    """Every 50 ms: which functions the main thread is in (each counted once per sample,
    so a function's count x 50 ms is the wall time spent in it and below), and the
    innermost Python function of every other thread."""
    main = threading.main_thread()
    me = threading.get_ident()
    while True:
        time.sleep(_SAMPLE_SECONDS)
        threads = {t.ident: t for t in threading.enumerate()}
        for ident, top in sys._current_frames().items():
            frame: FrameType | None = top
            if ident == me or frame is None:
                continue
            if ident == main.ident:
                seen = set()
                while frame is not None:
                    seen.add(_where(frame))
                    frame = frame.f_back
                for name in seen:
                    _main_stacks[name] = _main_stacks.get(name, 0) + 1
            elif ident in threads:
                key = f"{_group(threads[ident])}: {_where(frame)}"
                _leaves[key] = _leaves.get(key, 0) + 1


def report(path: str) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    found = {"wall": time.monotonic() - T0, "process_cpu": usage.ru_utime + usage.ru_stime,
             "process_sys": usage.ru_stime, "main_cpu": time.thread_time(),
             "first_thread_at": _first.get("at"),
             "main_cpu_before_first_thread": _first.get("main_cpu"),
             "groups": {name: {key: round(value, 3) for key, value in group.items()}
                        for name, group in sorted(_groups.items())},
             "main_stack_seconds": {name: round(count * _SAMPLE_SECONDS, 2) for name, count in
                                    sorted(_main_stacks.items(), key=lambda i: -i[1])[:45]},
             "thread_leaf_seconds": {name: round(count * _SAMPLE_SECONDS, 2) for name, count
                                     in sorted(_leaves.items(), key=lambda i: -i[1])[:30]}}
    with open(path, "w") as out:
        json.dump(found, out)


if __name__ == "__main__":
    out_path, module = sys.argv[1], sys.argv[2]
    threading.Thread(target=sample, name="threadstat", daemon=True).start()  # not counted
    threading.Thread.run = run  # type: ignore[method-assign]
    threading.Thread.start = start  # type: ignore[method-assign]
    atexit.register(report, out_path)
    sys.argv = [module, *sys.argv[3:]]
    sys.path[0] = os.getcwd()  # as `python3 -m` has it, not this script's folder
    runpy.run_module(module, run_name="__main__", alter_sys=True)
