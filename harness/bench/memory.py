"""Peak resident memory of process trees, sampled on a thread with psutil."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil


def tree_rss(pid: int, *, skip: Callable[[psutil.Process], bool] | None = None) -> int:
    """Resident bytes of ``pid`` and its descendants (skipping those ``skip`` names)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            if skip is not None and skip(proc):
                continue
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakRSS:
    """Samples the RSS of named process trees every ``interval`` seconds.

    ``skip_exe`` leaves the benchmark's own task processes out of the launcher's
    figure: we measure what tolu costs, not what /bin/true weighs.
    """

    def __init__(self, *, interval: float = 0.2, skip_exe: str | None = None) -> None:
        self.interval = interval
        self.skip_exe = skip_exe
        self.pids: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _skip(self, proc: psutil.Process) -> bool:
        if self.skip_exe is None:
            return False
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            return True
        return bool(cmd) and cmd[0] == self.skip_exe

    def watch(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self.pids[name] = pid
            self.sample()

    def sample(self) -> None:
        for name, pid in list(self.pids.items()):
            rss = tree_rss(pid, skip=self._skip)
            if rss > self.peak.get(name, 0):
                self.peak[name] = rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, int]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return dict(self.peak)

    def peak_mb(self, name: str) -> float | None:
        value = self.peak.get(name)
        return None if value is None else value / 2**20
