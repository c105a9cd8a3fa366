"""A stand-in tolu process with a known CPU bill, for the tests of harness/bench/processes.py.

``python fake_tolu_process.py ROLE SECONDS [ROLE SECONDS ...]`` announces ROLE
(runner.roles), starts the rest of the chain as its child through ``sh -c`` (the
shell plays the MPI runtime: not tolu's, with a tolu process below it), burns SECONDS
of CPU itself, and with ``task`` as ROLE starts a task that burns CPU and stays alive.
Then it prints one JSON line per process of its chain — pid, role, its own CPU time
(``time.process_time``: the same clock the watch reads) — and blocks until its stdin
closes. Nothing here waits on a clock: every step waits on a pipe.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

from runner.roles import Role, announce

TASK = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.3: pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.read()\n"
)


def burn(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def main(argv: list[str]) -> int:
    role, seconds, rest = argv[0], float(argv[1]), argv[2:]
    task = None
    if role == "starter":
        # a task: busy, then alive and idle; its CPU must count for nobody
        task = subprocess.Popen(
            [sys.executable, "-c", TASK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert task.stdout is not None
        task.stdout.readline()
    announce(Role(role))
    child = None
    lines: list[str] = []
    if rest:
        line = shlex.join([sys.executable, __file__, *rest])
        child = subprocess.Popen(
            ["sh", "-c", f"{line}; :"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        lines = child.stdout.readline().split("\t")
    burn(seconds)
    me = json.dumps(
        {"pid": os.getpid(), "role": role, "cpu": time.process_time(), "task": task.pid if task else None}
    )
    print("\t".join([me, *lines]).strip(), flush=True)
    sys.stdin.read()
    for proc in (child, task):
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
