"""What machine a benchmark ran on: the facts that make its numbers comparable.

Collected once per run, before any work starts, so the load average tells how busy
the machine already was.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import psutil

from harness.bench import filesystem
from harness.bench.schema import Machine


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, falling back to platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mpiexec_path() -> str | None:
    """The ``mpiexec`` next to this Python (the mpich wheel's) or on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


def mpi_version(mpiexec: str | None = None) -> str | None:
    """First line naming the MPI library, from ``mpichversion`` or ``mpiexec --version``."""
    mpiexec = mpiexec or mpiexec_path()
    if mpiexec is None:
        return None
    candidates = [[str(Path(mpiexec).parent / "mpichversion")], [mpiexec, "--version"]]
    for argv in candidates:
        if not Path(argv[0]).exists():
            continue
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines():
            if re.search(r"version", line, re.IGNORECASE):
                return " ".join(line.split())
    return None


def os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def git_commit(repo: Path | None = None) -> str | None:
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def tolu_version() -> str:
    try:
        return metadata.version("tolu")
    except metadata.PackageNotFoundError:
        return "unknown"


def python_loop_ns(steps: int = 200_000, tries: int = 5) -> float:
    """Nanoseconds per step of a plain Python loop (``x += i`` over a range), best of
    ``tries``: how fast this interpreter runs Python, on this machine, now.

    tolu's own CPU per job (server, coordinator, spawners) scales with it; what the
    baselines spend on spawning processes does not. An interpreter built without PGO
    runs tolu at about half speed while ``fork``/``exec`` cost the same, so two machines'
    ratios compare only beside this figure (docs/performance.md)."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        x = 0
        for i in range(steps):
            x += i
        best = min(best, time.perf_counter() - started)
    return best / steps * 1e9


def collect(
    *, database: str = "sqlite", database_version: str | None = None, work_dir: Path | None = None
) -> Machine:
    """Describe this machine now; with ``work_dir``, the file system the jobs' directories are on."""
    fs = filesystem.of(work_dir) if work_dir is not None else None
    mem = psutil.virtual_memory()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    mpiexec = mpiexec_path()
    return Machine(
        hostname=socket.gethostname(),
        cpu_model=cpu_model(),
        cores_logical=psutil.cpu_count(logical=True) or 0,
        cores_physical=psutil.cpu_count(logical=False),
        memory_bytes=mem.total,
        memory_available_bytes=mem.available,
        os=os_release(),
        kernel=platform.release(),
        python=platform.python_version(),
        python_implementation=platform.python_implementation(),
        python_executable=os.path.realpath(sys.executable),
        python_loop_ns=round(python_loop_ns(), 1),
        file_system=fs.describe() if fs else None,
        slow_inode_reuse=fs.reuses_freed_inodes_slowly if fs else None,
        mpi=mpi_version(mpiexec),
        mpiexec=mpiexec,
        database=database,
        database_version=database_version,
        tolu_version=tolu_version(),
        git_commit=git_commit(),
        load_average=load,
    )
