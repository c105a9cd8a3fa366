"""The one error of the container package, with the tail of the log that explains it."""

from __future__ import annotations

from pathlib import Path

LOG_TAIL_LINES = 30


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ContainerError(RuntimeError):
    """The server image could not be built, or the container did not become healthy.

    ``log_tail`` carries the last lines of the build or container log.
    """

    def __init__(self, message: str, *, log_tail: str = "", log_path: Path | None = None) -> None:
        details = message
        if log_path is not None:
            details += f" (log: {log_path})"
        if log_tail:
            details += "\n--- last log lines ---\n" + log_tail
        super().__init__(details)
        self.log_tail = log_tail
        self.log_path = log_path
