"""Per-run and per-test state of the plugin, kept in pytest's stash."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.artifacts import Recorder
from harness.locations import Detection, Registry
from harness.selection import Unavailable, missing_verdict
from harness.waiting import WaitTimeout, wait_until

if TYPE_CHECKING:
    from harness.publish import Target


@dataclass
class Daemon:
    """A process the harness started; stopped by PID at the latest when pytest ends."""

    label: str
    pid: int
    stop: Callable[[], object]


@dataclass
class RunState:
    run_id: str
    run_dir: Path
    registry: Registry
    detection: Detection
    required: frozenset[str]
    started: datetime
    #: True in an xdist worker: it writes evidence, the controller writes the report.
    is_worker: bool
    worker_id: str = "main"
    junit_path: Path | None = None
    #: False in xdist workers and in runs that run no tests (--collect-only, --markers, ...).
    writes_artifacts: bool = False
    recorder: Recorder = field(default_factory=Recorder)
    daemons: list[Daemon] = field(default_factory=list)
    #: databases used by servers in this process (for the report's environment).
    databases: set[str] = field(default_factory=set)
    #: where --tolu-publish keeps the report (harness.publish.Target); None: not published.
    publish_to: Target | None = None
    #: 1, 5 and 15-minute load averages when the run started: how busy the machine was.
    load_average: tuple[float, ...] = field(default_factory=lambda: load_average())

    def missing_required(self) -> list[str]:
        return sorted(f for f in self.required if f not in self.detection.features)

    def need(self, *features: str) -> None:
        """Skip (or fail, when required) the current test unless every feature is here."""
        verdict = missing_verdict(
            [f for f in features if f not in self.detection.features], self.detection, self.required
        )
        fail_or_skip(verdict)

    def track(self, label: str, pid: int, stop: Callable[[], object]) -> Daemon:
        daemon = Daemon(label, pid, stop)
        self.daemons.append(daemon)
        return daemon

    def untrack(self, daemon: Daemon) -> None:
        if daemon in self.daemons:
            self.daemons.remove(daemon)

    def stop_leftover_daemons(self) -> list[str]:
        """Stop what a fixture did not (interrupt, crash); by PID, never by name."""
        stopped: list[str] = []
        for daemon in reversed(list(self.daemons)):
            try:
                daemon.stop()
            except Exception:
                kill_pid(daemon.pid)
            stopped.append(f"{daemon.label} (pid {daemon.pid})")
        self.daemons.clear()
        return stopped


def load_average() -> tuple[float, ...]:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:  # not on this platform
        return ()


def fail_or_skip(verdict: Unavailable | None) -> None:
    if verdict is None:
        return
    if verdict.must_fail:
        pytest.fail(verdict.reason, pytrace=False)
    pytest.skip(verdict.reason)


def _live_pids(pid: int, group: bool) -> list[int]:
    """Processes of ``pid`` (or of its process group) that still run; zombies count as gone."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat") if group else [Path(f"/proc/{pid}/stat")]:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, pgrp = fields[0], int(fields[2])
        if state != "Z" and (pgrp == pid if group else True):
            found.append(int(stat.parent.name))
    return found


def kill_pid(pid: int, grace_sec: float = 5.0) -> None:
    """SIGTERM the process group led by ``pid`` (or just the process), SIGKILL what is left
    after the grace time. Does not reap: a Popen that owns the process keeps its exit code."""
    if pid <= 1:  # unknown pid: never signal -1 (every process) or init
        return
    try:
        group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            return
        try:
            wait_until(
                lambda: not _live_pids(pid, group), timeout=grace_sec, interval=0.05, what=f"pid {pid} to end"
            )
        except WaitTimeout:
            continue  # still there after the grace time: the next signal
        return


run_key = pytest.StashKey[RunState]()
#: per test: the phase reports so far (fixtures look at the call outcome in teardown).
reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()
#: per test: why it was skipped or failed by a location/requires mark.
unavailable_key = pytest.StashKey[Unavailable | None]()


def run_state(config: pytest.Config) -> RunState:
    return config.stash[run_key]


def item_info(item: pytest.Item) -> dict[str, Any]:
    """What each of the test's reports carries to the controller (JSON-able for xdist)."""
    return {"markers": sorted({m.name for m in item.iter_markers()})}
