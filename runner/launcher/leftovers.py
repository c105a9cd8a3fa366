"""What a dead launcher left running on its host, found by a mark in the environment.

A launcher killed with SIGKILL cannot stop its tasks. Its spawners and the tasks'
direct processes die with it (runner/launcher/deathsig.py: each dies with its parent),
but what those started lives on: the processes under an MPI task's ``mpiexec``
(Hydra's proxies and the ranks), a shell task's children. They still run the job,
and once the next launcher ends the dead one's session, the job is offered again
and may start a second copy beside the first (seen: a ``mpiexec`` task's shell still
held its workdir 100 ms after the kill, when its rerun began).

So every launcher marks its processes: ``tolu launcher`` puts :data:`ENV` (a value
of its own) in its environment before it starts anything, every process below it
inherits it, and the journal's header names it. A successor that takes over a dead
launcher's journal on the same host kills every process that still carries the
mark, and waits until they are gone, before the dead launcher's session is ended
and its jobs released (runner/launcher/context.py). Nothing is reported for them:
their outcome was nobody's to see, and their jobs run again.

A task the launcher stops (its wall time, the launcher's own stop) is ended through its
process group; a process that left the group (``setsid``, a daemon) would outlive it
and run beside the job's rerun. So once a stopped task's own process is gone, its
spawner kills what still carries both the launcher's mark and the task's
``TOLU_JOB_ID`` (runner/launcher/spawner.py).

Linux only (``/proc``); elsewhere there is nothing to find. Processes of other users
cannot be read, and their own launcher's user is the only one that could start them.
Standard library only, and no ``logging`` or ``pathlib``: the spawners import it, and
they must start small and fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time

#: the environment variable that marks every process a launcher starts.
ENV = "TOLU_LAUNCHER_ID"
#: the one that names the job a task's processes run (runner/launcher/tasks.py).
JOB_ENV = "TOLU_JOB_ID"
#: how long a successor waits for the killed processes to be gone.
GONE_SEC = 10.0
_PROC = "/proc"


def new_mark() -> str:
    """Set a fresh mark in this process's environment (inherited from here on); return it.

    Fresh even when one is there: a launcher started by a task of another launcher
    must not carry that launcher's mark as its own.
    """
    mark = f"{socket.gethostname().split('.')[0]}-{os.getpid()}-{time.time_ns()}"
    os.environ[ENV] = mark
    return mark


def mark() -> str:
    """This launcher's mark: the one its ``tolu launcher`` set, else a new one."""
    return os.environ.get(ENV) or new_mark()


def find(mark: str, job_id: int | None = None) -> list[int]:
    """The pids of the processes of this host that carry ``mark`` (and, with ``job_id``,
    that job's ``TOLU_JOB_ID``), never this process nor one it runs under: a launcher
    started by a task of the dead one carries its mark too."""
    needles = [f"\0{ENV}={mark}\0".encode()]
    if job_id is not None:
        needles.append(f"\0{JOB_ENV}={job_id}\0".encode())
    spared = _ancestors()
    found = []
    try:
        names = os.listdir(_PROC)
    except OSError:
        return []
    for name in names:
        if not name.isdigit() or int(name) in spared:
            continue
        try:
            with open(f"{_PROC}/{name}/environ", "rb") as fh:
                environ = b"\0" + fh.read()
        except OSError:  # gone, or another user's
            continue
        if all(needle in environ for needle in needles):
            found.append(int(name))
    return found


def kill(mark: str, job_id: int | None = None, *, timeout: float = GONE_SEC) -> list[int]:
    """SIGKILL every process that carries ``mark`` (and ``job_id``'s, if given); return
    their pids once they are gone (or ``timeout`` passed: a process in uninterruptible
    sleep goes when its I/O ends).

    Rounds until none is found: a process may fork between the scan and its kill."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while (pids := [p for p in find(mark, job_id) if _running(p)]) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.extend(p for p in pids if p not in killed)
        while (pids := [p for p in pids if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.01)
    if pids:
        import logging

        logging.getLogger("runner.launcher").warning(
            "processes of a launcher's task outlived SIGKILL for %g s: %s", timeout, pids
        )
    return killed


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie runs nothing; its parent reaps it in its time)."""
    try:
        with open(f"{_PROC}/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _ancestors() -> set[int]:
    pids = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"{_PROC}/{pid}/stat") as fh:
                pid = int(fh.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids
