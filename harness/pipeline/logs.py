"""ERROR lines in the run's logs (server, agent, launchers, batch scripts), as they appear."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.container.server import ContainerServer

if TYPE_CHECKING:
    from harness.pipeline.context import Run

ERROR_LINE = re.compile(r"\bERROR\b|^Traceback \(most recent call last\)")
LOG_SUFFIXES = {".log", ".out", ".stdout"}
#: what a line printed while the run goes on keeps of an ERROR line
ANNOUNCED_CHARS = 200


class LogWatch:
    """Reads each log from where the last look stopped; keeps every ERROR line it saw."""

    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}
        #: (where, line) of every ERROR line so far
        self.errors: list[tuple[str, str]] = []

    def scan(self, paths: Iterable[Path], where: Callable[[Path], str]) -> list[tuple[str, str]]:
        """The new ERROR lines of ``paths`` (complete lines only), named by ``where(path)``."""
        found = []
        for path in paths:
            offset = self._offsets.get(path, 0)
            try:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            self._offsets[path] = offset + end
            for line in chunk[:end].decode(errors="replace").splitlines():
                if ERROR_LINE.search(line):
                    found.append((where(path), line.strip()))
        self.errors += found
        return found


def log_files(run: Run) -> list[Path]:
    """The site's logs and batch-script output, and the server's log."""
    files = []
    for sub in ("log", "batch"):
        folder = run.site_dir / sub
        if folder.is_dir():
            files += [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in LOG_SUFFIXES]
    log_path = getattr(run.server, "log_path", None)
    if isinstance(log_path, Path) and log_path.exists():
        files.append(log_path)
    return files


def scan_logs(run: Run, *, announce: bool = True) -> None:
    """Look for new ERROR lines; with ``announce``, print each one as it is found."""
    if isinstance(run.server, ContainerServer):
        run.server.collect_logs()  # the container's output, into its log file
    for where, line in run.logs.scan(log_files(run), run.rel):
        if announce:
            run.print(f"        [{run.elapsed()}] ERROR in {where}: {line[:ANNOUNCED_CHARS]}")
