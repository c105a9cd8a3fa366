"""The launchers a site started that are still running."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import psutil

LAUNCHER_LOG = re.compile(r"launcher-(\d+)\.log$")


def launcher_pids(site_dir: Path) -> list[int]:
    """PIDs of the site's live launchers (each writes ``log/launcher-<pid>.log``)."""
    pids = []
    for log_file in (site_dir / "log").glob("launcher-*.log"):
        m = LAUNCHER_LOG.match(log_file.name)
        if not m:
            continue
        pid = int(m.group(1))
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            # the pid may have been reused by another program since the launcher ended
            if proc.is_running() and "launcher" in " ".join(proc.cmdline()):
                pids.append(pid)
    return pids
