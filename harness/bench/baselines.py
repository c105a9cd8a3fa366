"""References measured in the same run, on the same machine, running the same task.

- ``process_pool``: ``ProcessPoolExecutor(W)`` whose workers each spawn the task
  (the raw process-spawn rate of this machine at W-way concurrency);
- ``process_pool_workdirs``: the same, each task in a directory of its own with its
  output in a file, on the site's file system, as every tolu job is: what the file
  system costs per task (5 us on tmpfs, hundreds on a busy ext4, a metadata round
  trip on Lustre) is then on both sides of the ratio;
- ``mpiexec_loop``: W threads each running ``mpiexec -n 1 <task>`` back to back
  (what MPI mode can at best reach with the same concurrency).

Both time only the work: the pool is warmed up before the clock starts, so the
ratios to them are conservative. The pool's workers are also the reference for the
CPU a process spends per task it starts: their CPU clocks are read before and after,
the same way harness/bench/processes.py reads tolu's processes (the tasks' own CPU
is not in it).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from harness.bench.processes import cpu_seconds
from harness.bench.schema import Baseline


class BaselineError(RuntimeError):
    """A baseline task that did not run (command, return code and output included)."""


def _run(argv: Sequence[str], *, keep_sigpipe_ignored: bool = False) -> int:
    return subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        restore_signals=not keep_sigpipe_ignored,
    ).returncode


def _run_many(argv: tuple[str, ...], count: int, workdirs: str | None = None) -> int:
    """Run the task ``count`` times; the number of non-zero exits. With ``workdirs``, each
    run gets a directory of its own there, its cwd, and its output in a file in it."""
    if workdirs is None:
        return sum(1 for _ in range(count) if _run(argv) != 0)
    failures = 0
    for _ in range(count):
        path = os.path.join(workdirs, f"{os.getpid()}-{next(_SERIAL)}")
        os.mkdir(path)
        with open(os.path.join(path, "job.out"), "ab") as out:
            code = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=path,
                check=False,
            ).returncode
        failures += code != 0
    return failures


_SERIAL = itertools.count()


def process_pool(argv: Sequence[str], *, workers: int, jobs: int, workdirs: Path | None = None) -> Baseline:
    """The pool baseline; with ``workdirs`` (a directory on the site's file system), the
    like-for-like one: each task in a directory of its own with its output in a file, as
    every tolu job is, so the file system's cost per task is on both sides."""
    argv = tuple(argv)
    where = None if workdirs is None else str(workdirs)
    if where is not None:
        os.makedirs(where, exist_ok=True)
    # Chunks keep the pool's own IPC out of the per-task cost: this is the spawn rate.
    chunk = max(1, min(32, jobs // (workers * 8) or 1))
    chunks = [chunk] * (jobs // chunk) + ([jobs % chunk] if jobs % chunk else [])
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_run_many, [argv] * workers, [1] * workers, [where] * workers))  # warm up every worker
        pids = list(getattr(pool, "_processes", None) or {})
        cpu_before = _cpu(pids)
        start = time.perf_counter()
        failures = sum(pool.map(_run_many, [argv] * len(chunks), chunks, [where] * len(chunks)))
        seconds = time.perf_counter() - start
        cpu_after = _cpu(pids)
    if failures:
        raise BaselineError(f"{failures} of {jobs} runs of {list(argv)} exited non-zero")
    name, description = "process_pool", f"ProcessPoolExecutor({workers}) whose workers spawn the task"
    if where is not None:
        name = "process_pool_workdirs"
        description += f" in a directory of its own, its output in a file there, on the site's FS ({where})"
    return Baseline(
        name=name,
        description=description,
        command=list(argv),
        workers=workers,
        jobs=jobs,
        seconds=seconds,
        jobs_per_s=jobs / seconds,
        cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    )


def _cpu(pids: Sequence[int]) -> float | None:
    """The CPU seconds of the pool's workers together; None if one cannot be read."""
    values = [cpu_seconds(pid) for pid in pids]
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def mpiexec_loop(mpiexec: str, argv: Sequence[str], *, workers: int, jobs: int) -> Baseline:
    command = [mpiexec, "-n", "1", *argv]
    lock = threading.Lock()
    remaining = [jobs]
    failures: list[int] = []

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            # Hydra's mpiexec now and then dies of SIGPIPE (-13) when two run at once;
            # with SIGPIPE ignored (as Python itself runs) it completes normally.
            code = _run(command, keep_sigpipe_ignored=True)
            if code != 0:
                with lock:
                    failures.append(code)

    _run(command, keep_sigpipe_ignored=True)  # warm the page cache for mpiexec and its proxy
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if failures:
        raise BaselineError(f"{len(failures)} of {jobs} runs of {command} exited non-zero ({failures[0]})")
    return Baseline(
        name="mpiexec_loop",
        description=f"{workers} threads each running `mpiexec -n 1 <task>` back to back",
        command=command,
        workers=workers,
        jobs=jobs,
        seconds=seconds,
        jobs_per_s=jobs / seconds,
    )


def combine(before: Sequence[Baseline], after: Sequence[Baseline]) -> list[Baseline]:
    """One baseline per name from the runs before and after the measured work."""
    out = []
    for a in before:
        b = next((x for x in after if x.name == a.name), None)
        if b is None:
            out.append(a)
            continue
        jobs = a.jobs + b.jobs
        seconds = a.seconds + b.seconds
        cpu = None if a.cpu_s is None or b.cpu_s is None else a.cpu_s + b.cpu_s
        out.append(
            a.model_copy(
                update={
                    "jobs": jobs,
                    "seconds": seconds,
                    "jobs_per_s": jobs / seconds,
                    "cpu_s": cpu,
                    "description": f"{a.description}; half before the tolu run ({a.jobs_per_s:.0f} jobs/s), "
                    f"half after ({b.jobs_per_s:.0f} jobs/s)",
                }
            )
        )
    return out
