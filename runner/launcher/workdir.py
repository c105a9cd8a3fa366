"""A job's working directory as the launcher leaves it: its output, its per-job files, the exit note.

Standard library only: the spawner processes (runner/launcher/spawner.py) import it,
and they must start small and fast.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

#: stdout+stderr of the job, appended to across attempts.
OUTPUT_FILE = "job.out"
#: per-job launcher files inside the workdir (python-function payloads, results, the exit note).
META_DIR = ".tolu"
RESULT_FILE = "result.json"
#: written in the workdir when a task ends with 0, before the launcher reports it (see
#: lost_success); beside job.out rather than in .tolu/, so that starting a shell
#: task makes one directory, not two.
EXIT_FILE = ".tolu-exit.json"
#: bytes of a job's output kept for the RUN_ERROR event.
TAIL_BYTES = 2048


def prepare(workdir: str) -> bool:
    """Make WORKDIR (one syscall in the common case: its parent exists); False when it
    was there already (a job run before, or a Python task's payload)."""
    try:
        os.mkdir(workdir)
    except FileExistsError:
        return False
    except FileNotFoundError:
        os.makedirs(workdir, exist_ok=True)
    return True


def note_success(
    workdir: str, job_id: int, session_id: int, attempt: int, started: float, ended: float
) -> None:
    """Note in the workdir that this attempt ended with 0, before the launcher reports it.

    If the launcher dies between the exit and its batched report, the server times
    the job out when the session expires and offers it again; the next launcher
    finds this note and reports the success instead of running the job a second
    time (lost_success). Only successes are noted: a failed attempt may be
    retried anyway.
    """
    record = (
        f'{{"job_id": {job_id}, "session_id": {session_id}, "attempt": {attempt}, '
        f'"started": {started!r}, "ended": {ended!r}}}'
    )
    with contextlib.suppress(OSError):  # the note only spares a rerun; never fail a job over it
        fd = os.open(os.path.join(workdir, EXIT_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, record.encode())
        finally:
            os.close(fd)


def lost_success(
    record: dict[str, Any], job_id: int, session_id: int, attempt: int, restart_ready: bool
) -> bool:
    """Whether a note is a success an earlier session saw but never got to report.

    Two ways a report gets lost when a launcher dies: nothing reached the server (the
    job was only held; the expired session released it with the same retry_count), or
    RUNNING did but the outcome did not (the expiry timed the job out: RESTART_READY,
    retry_count one higher). A reported success goes on to POSTPROCESSED and is never
    offered again, so a matching note means the work is done.
    """
    if record.get("job_id") != job_id or record.get("session_id") == session_id:
        return False
    noted = record.get("attempt")
    return noted == attempt or (noted == attempt - 1 and restart_ready)


def read_note(workdir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(workdir, EXIT_FILE), "rb") as fh:
            record: dict[str, Any] = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return record


def read_result(workdir: str) -> dict[str, Any]:
    """What a python-function task left for the job's ``data``."""
    try:
        with open(os.path.join(workdir, META_DIR, RESULT_FILE), "rb") as fh:
            data: dict[str, Any] = json.loads(fh.read())
    except (OSError, ValueError):
        return {"exception": {"type": "LauncherError", "message": "the function left no result file"}}
    return data


def tail(path: str, nbytes: int = TAIL_BYTES) -> str:
    """The last ``nbytes`` of a file as text, from a line start when cut (empty if missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - nbytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > nbytes and "\n" in text:
        text = text.split("\n", 1)[1]
    return text
