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
#: the exit note, written when a task ends with 0, before the launcher reports it (see
#: lost_success): an extended attribute of the workdir where its file system has them,
#: so that a job's end creates no file (making one costs 5 us on tmpfs and 250-500 us of
#: kernel CPU on a busy ext4, against 5 us for the attribute; on Lustre or GPFS it is a
#: metadata round trip); else this file beside job.out (not in .tolu/, so that starting a
#: shell task makes one directory, not two).
EXIT_XATTR = "user.tolu.exit"
EXIT_FILE = ".tolu-exit.json"
#: the longest attribute value that stays inside an ext4 inode of 256 bytes (the default):
#: a longer one takes a 4 KiB block of its own per job (18 us of kernel CPU instead of 5,
#: a block written back, 4 GiB of disk over a million jobs)
IN_INODE_BYTES = 60
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
    try:
        os.setxattr(workdir, EXIT_XATTR, short_note(job_id, session_id, attempt, started, ended))
        return
    except OSError:  # no user attributes here (or no room): the file
        # an older note in the attribute must not outlive this one (read_note prefers it)
        with contextlib.suppress(OSError):
            os.removexattr(workdir, EXIT_XATTR)
    record = json.dumps(
        {"job_id": job_id, "session_id": session_id, "attempt": attempt, "started": started, "ended": ended}
    ).encode()
    with contextlib.suppress(OSError):  # the note only spares a rerun; never fail a job over it
        fd = os.open(os.path.join(workdir, EXIT_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)


def short_note(job_id: int, session_id: int, attempt: int, started: float, ended: float) -> bytes:
    """The note as the attribute holds it: five numbers, the times to the microsecond (as
    the server keeps them). Up to IN_INODE_BYTES (job ids of 10 digits, sessions of 7) it
    stays inside the inode; the JSON it replaced (~105 bytes) took a block per job."""
    return b"%d %d %d %.6f %.6f" % (job_id, session_id, attempt, started, ended)


def _parse_note(data: bytes) -> dict[str, Any] | None:
    """A note: the attribute's five numbers, or JSON (the file; an attribute written by a
    launcher before the short form)."""
    if not data.startswith(b"{"):
        try:
            job_id, session_id, attempt, started, ended = data.split()
            return {
                "job_id": int(job_id), "session_id": int(session_id), "attempt": int(attempt),
                "started": float(started), "ended": float(ended),
            }  # fmt: skip
        except ValueError:
            return None
    try:
        record: dict[str, Any] = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def lost_success(record: dict[str, Any], job_id: int, session_id: int, attempt: int) -> bool:
    """Whether a note is a success an earlier session saw in this very attempt but never
    got to report.

    The server starts a new attempt (Job.attempt) at every move to RESTART_READY: a
    retry after an error or a timeout, a hook, a user's retry after a hook failed the
    job. So a note of the same attempt means the job ran to success and nothing moved
    it since (the launcher died before any report: its expired session handed the job
    back in the same attempt), and a note of an earlier attempt is never a success of
    this one: the job runs again. When RUNNING reached the server but the outcome did
    not, the dead launcher's journal (runner/launcher/journal.py) carries the outcome;
    the next launcher of the site sends it before it acquires anything.
    """
    if record.get("job_id") != job_id or record.get("session_id") == session_id:
        return False
    return bool(record.get("attempt") == attempt)


def read_note(workdir: str) -> dict[str, Any] | None:
    """The workdir's exit note (the attribute, else the file), or None."""
    try:
        data = os.getxattr(workdir, EXIT_XATTR)
    except OSError:
        try:
            with open(os.path.join(workdir, EXIT_FILE), "rb") as fh:
                data = fh.read()
        except OSError:
            return None
    return _parse_note(data)


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
