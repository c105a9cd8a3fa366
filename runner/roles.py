"""What a tolu process does, announced in its kernel name so that ``ps``, ``top`` and ``tolu bench`` see it.

A process calls :func:`announce` once it knows its part; its name in ``/proc/PID/comm``
becomes ``tolu-<code>`` (``tolu-coord``, ``tolu-start``...). The kernel name is the right
carrier: it needs no library (setproctitle), it is set per process (a forked worker
announces again), and ``exec`` resets it, so the tasks a process starts never carry its
role (an environment variable would leak into every task). ``tolu bench`` classifies
the processes of a run by it and gives each role its CPU time per job
(harness/bench/processes.py).

The roles, and why they matter for throughput:

- ``server``: answers the API (one per server worker);
- ``coordinator``: moves every job of its node in batches (fetch, hand out, report);
  it may spend only tens of microseconds per job, or it cannot feed many cores;
- ``starter``: starts tasks and waits for them (one per core or per few slots);
  starting tasks is spread over these, like a process pool's workers;
- ``launcher``: a launcher process that is both coordinator and starter;
- ``supervisor``: only watches other tolu processes (the parent that waits on
  ``mpiexec``, a multi-worker server's manager);
- ``agent``: the site agent.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path

#: kernel process names are 15 bytes; every announced name starts with this.
PREFIX = "tolu-"


class Role(enum.Enum):
    SERVER = "server"
    COORDINATOR = "coordinator"
    STARTER = "starter"
    LAUNCHER = "launcher"
    SUPERVISOR = "supervisor"
    AGENT = "agent"

    @property
    def comm(self) -> str:
        """The kernel name that announces this role (at most 15 bytes)."""
        return PREFIX + _CODES[self]

    @classmethod
    def from_comm(cls, comm: str) -> Role | None:
        """The role a kernel name announces, or None."""
        return _BY_COMM.get(comm.strip())


_CODES = {
    Role.SERVER: "server",
    Role.COORDINATOR: "coord",
    Role.STARTER: "start",
    Role.LAUNCHER: "launcher",
    Role.SUPERVISOR: "super",
    Role.AGENT: "agent",
}
_BY_COMM = {role.comm: role for role in Role}


def announce(role: Role) -> bool:
    """Name this process after ``role``; False where the system has no such name (not Linux).

    Writing ``/proc/self/comm`` names the process (its main thread), whichever thread
    writes. Cheap and idempotent: call it again after a fork.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        Path("/proc/self/comm").write_text(role.comm)
    except OSError:
        return False
    return True
