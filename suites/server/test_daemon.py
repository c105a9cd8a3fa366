"""runner.daemon: start detached until ready, pid files that know a recycled pid, TERM then KILL.

``tolu server up/down`` (test_cli_server.py) and ``tolu site start/stop``
(suites/site/test_agent_cli.py) run through it end to end; these are its own rules,
on real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from runner import daemon

#: a process that says it is up (a file), then sleeps; ``ignore-term`` makes it shrug off SIGTERM.
SLEEPER = """
import pathlib, signal, sys, time
if "ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text("up")
print("sleeper up", flush=True)
while True:
    time.sleep(1)
"""


def sleeper(tmp_path: Path, *flags: str) -> list[str]:
    return [sys.executable, "-c", SLEEPER, str(tmp_path / "up"), *flags]


def test_start_returns_when_ready_and_stop_terminates(tmp_path: Path) -> None:
    log = tmp_path / "log" / "sleeper.log"
    proc = daemon.start(
        sleeper(tmp_path), log_path=log, ready=lambda _p: (tmp_path / "up").exists(), timeout=60
    )
    try:
        assert proc.poll() is None and (tmp_path / "up").read_text() == "up"
        assert os.getsid(proc.pid) == proc.pid  # its own session: the terminal's Ctrl-C does not reach it
    finally:
        stopped = daemon.stop(proc, timeout=30)
    assert stopped == daemon.Stopped(proc.pid, killed=False, exit_code=-signal.SIGTERM)
    assert "sleeper up" in log.read_text()


def test_a_process_that_exits_before_it_is_ready_says_why(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    log.write_text("an earlier run\n")
    command = [sys.executable, "-c", "import sys; print('no database here'); sys.exit(3)"]
    with pytest.raises(daemon.StartError) as err:
        daemon.start(command, log_path=log, ready=lambda _p: False, timeout=60, name="the crasher")
    assert err.value.exit_code == 3
    assert "the crasher exited with code 3 before it was ready" in str(err.value)
    assert err.value.log_tail.splitlines()[-1] == "no database here"
    assert log.read_text().startswith("an earlier run\n")  # appended to, not replaced


def test_a_process_never_ready_is_stopped(tmp_path: Path) -> None:
    started: list[int] = []

    def never(proc: subprocess.Popen[bytes]) -> bool:
        started.append(proc.pid)
        return False

    with pytest.raises(daemon.StartError) as err:
        daemon.start(sleeper(tmp_path), log_path=tmp_path / "s.log", ready=never, timeout=0.5)
    assert err.value.exit_code is None and "not ready within 0.5 s" in str(err.value)
    assert not psutil.pid_exists(started[0])


def test_stop_kills_what_ignores_sigterm_and_leaves_a_stranger_unreaped(tmp_path: Path) -> None:
    proc = daemon.start(
        sleeper(tmp_path, "ignore-term"),
        log_path=tmp_path / "s.log",
        ready=lambda _p: (tmp_path / "up").exists(),
        timeout=60,
    )
    try:
        # Stopped by PID, as `tolu site stop` stops an agent another process started:
        # SIGKILL after the timeout, and how it ended stays for its parent to read.
        stopped = daemon.stop(psutil.Process(proc.pid), timeout=0.5)
        assert stopped == daemon.Stopped(proc.pid, killed=True, exit_code=None)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        daemon.stop(proc)


def test_pid_file_names_only_the_process_that_wrote_it(tmp_path: Path) -> None:
    pid_file = daemon.PidFile(tmp_path / "run" / "x.pid")
    assert pid_file.read() is None and pid_file.running() is None
    pid_file.write(url="http://h:1")
    record = pid_file.read()
    assert record is not None and record["pid"] == os.getpid() and record["url"] == "http://h:1"
    assert pid_file.running() == os.getpid()

    # The same pid with another start time: the kernel gave our pid to someone else.
    pid_file.path.write_text(json.dumps({**record, "started": record["started"] - 3600}))
    assert pid_file.read() is not None and pid_file.running() is None

    # A process that has exited is not running: a zombie (its parent has not read its
    # status yet), and once it is gone.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    pid_file.write(child.pid)  # it exists until we reap it
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it has exited; not reaped
    assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    assert pid_file.running() is None
    child.wait()
    assert pid_file.running() is None

    # Garbage is no pid file; remove(pid) spares a file that names another process.
    pid_file.write()
    pid_file.remove(pid=os.getpid() + 1)
    assert pid_file.running() == os.getpid()
    pid_file.remove(pid=os.getpid())
    assert not pid_file.path.exists()
    pid_file.path.write_text("12 34\n")
    assert pid_file.read() is None and pid_file.running() is None
