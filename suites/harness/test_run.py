"""Stopping what the harness started: by PID (process group), never by name."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from harness.locations import detect, load
from harness.run import RunState, kill_pid
from harness.waiting import wait_until


def _ready(path: Path) -> str:
    """Python code that creates ``path`` (a child tells the test it is set up)."""
    return f"open({str(path)!r}, 'w').close()"


def test_kill_pid_stops_the_process_group(tmp_path: Path) -> None:
    # a parent in its own session with a child: both go
    ready = tmp_path / "ready"
    script = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"{_ready(ready)}; time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    wait_until(ready.exists, timeout=30, what="the parent to have started its child")
    kill_pid(proc.pid, grace_sec=5)
    assert proc.wait(timeout=5) is not None
    group = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(proc.pid)], capture_output=True, text=True)
    running = [line for line in group.stdout.splitlines() if not line.split()[1].startswith("Z")]
    assert running == []  # zombies wait for their (re)parent to reap them; they run nothing


def test_kill_pid_escalates_to_sigkill(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = (
        f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); {_ready(ready)}; time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    wait_until(ready.exists, timeout=30, what="the child to ignore SIGTERM")
    kill_pid(proc.pid, grace_sec=0.5)
    assert proc.wait(timeout=5) == -9


def test_leftover_daemons_are_stopped(tmp_path: Path) -> None:
    registry = load()
    detection = detect(registry, hostname="h", env={})
    state = RunState("r", tmp_path, registry, detection, frozenset(), datetime.now(UTC), is_worker=False)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    state.track("sleeper", proc.pid, lambda: kill_pid(proc.pid))
    assert state.stop_leftover_daemons() == [f"sleeper (pid {proc.pid})"]
    assert proc.wait(timeout=5) is not None
    assert state.daemons == []


def test_unknown_pid_is_never_signalled() -> None:
    kill_pid(-1)  # os.kill(-1, ...) would signal every process we may signal
    kill_pid(0)  # ... and 0 our own process group; we are still here
