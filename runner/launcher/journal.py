"""The launcher's outcome journal: every report kept on disk until the server has taken it.

One file per launcher, ``SITE/journal/<host>-<pid>-<start>.jsonl``, JSON lines:

- a header ``{"journal": 1, "host": ..., "pid": ..., "site_id": ..., "started": ..., "mark": ...}``
  (``mark``: what the launcher's processes carry, runner/launcher/leftovers.py);
- ``{"n": 7, "s": 12, "r": {...}}``: report number 7, made under session 12 (a JobReport as JSON);
- ``{"ack": [5, 6, 7]}``: the server took those (applied them, or said they are moot);
- ``{"session": 12}``: the launcher opened session 12;
- ``{"start": 9, "s": 12, "a": 0, "t": ...}``: a spawner started job 9 (attempt 0,
  session 12) at time t, before the coordinator heard of it (MPI mode: a task queued
  behind another; serial mode: every task, which a worker starts when a slot frees).
  Never sent as such: ``read`` turns the start of a job the file has no report of
  into its RUNNING, so every real start leaves a RUNNING Event even when the launcher
  is killed at once;
- ``{"end": 9, "s": 12, "a": 0, "t0": ..., "t": ...}``: a spawner saw job 9 end with 0
  (started at t0, ended at t), before reporting it. ``read`` turns it into the job's
  RUN_DONE when the file has no outcome of the job: once its start is journaled, the
  successor sends that RUNNING, so the session's expiry could only start a new attempt
  and run the job again.

``read`` closes a run the file shows beginning, in a RUNNING it holds unsent or in a
start line, and not ending: a RUN_TIMEOUT after everything else.

Serial mode's worker ranks on other nodes note their starts in a file of their own
beside it, ``<journal>.rank<N>.starts`` (:func:`rank_starts`): appends from several
hosts to one file are not atomic on every shared file system (NFS). ``read`` takes
their start lines in with the journal's, and they go with it.

Reports are written (``os.write``, no buffering in the process) as the engine hands
them over, so a launcher killed a moment later has left them in the file; the
reporter ``fsync``s the file once per batch before sending it, so a node that loses
power loses at most the batch in flight. The owner holds an exclusive ``flock`` on
its file while it lives: a journal whose lock can be taken and whose process is gone
is an orphan, and the next launcher of the site sends what it still holds
(``orphans``/``read``) before it takes new work. A torn last line (a kill in the
middle of a write) is ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from runner.launcher import leftovers
from runner.models import JobReport
from runner.states import JobState

log = logging.getLogger("runner.launcher")

DIR = "journal"
SUFFIX = ".jsonl"
#: a journal being created (``Journal.open``): locked, then renamed to its name.
NEW = ".new"
#: an all-acknowledged journal larger than this starts over (keeps replay short).
COMPACT_BYTES = 4 << 20
#: how much of its end a compaction reads back for spawners' starts still in flight: a
#: start and an end line (~80 bytes each) for each task the node's spawners ran within
#: one flush period (spawner.FLUSH_SEC, 50 ms), room for ~6,500 tasks; a 128-core node
#: starting 20,000 a second runs 1,000 in that time
COMPACT_TAIL_BYTES = 1 << 20


#: not frozen, as every value made per job: read-only all the same (docs/performance.md,
#: "Values made per job, no longer frozen")
@dataclass(slots=True)
class Report:
    """One report as the launcher keeps and sends it: a ``JobReport``'s JSON, with the
    three things the reporter reads of it. Made by :func:`report`, not by pydantic:
    every job's RUNNING and outcome pass here, and building and encoding a model for
    each cost a coordinator 9 µs of its ~60 µs per job (timeit)."""

    id: int
    attempt: int
    state: JobState
    #: the journal line's ``"r"`` and the server's report, as they are
    json: str


def report(job_id: int, attempt: int, state: JobState, when: datetime, **fields: Any) -> Report:
    """A report about attempt ``attempt`` of job ``job_id``: it went to ``state`` at
    ``when`` (aware), with ``JobReport``'s other fields (``state_data``, ``return_code``,
    ``data``) as given. NUL characters, which the server refuses (no database text
    holds them) and a task's output may carry into ``state_data["tail"]``, become U+FFFD."""
    body = {"id": job_id, "attempt": attempt, "state": state.value, "timestamp": when, **fields}
    text = orjson.dumps(body, option=orjson.OPT_UTC_Z)
    if b"\\u0000" in text:
        text = orjson.dumps(_without_nul(body), option=orjson.OPT_UTC_Z)
    return Report(job_id, attempt, state, text.decode())


def from_model(r: JobReport) -> Report:
    return Report(r.id, r.attempt, r.state, r.model_dump_json(exclude_unset=True))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


#: not frozen, as every value made per job: read-only all the same (docs/performance.md,
#: "Values made per job, no longer frozen")
@dataclass(slots=True)
class Entry:
    """One report and where it came from: the session the job was acquired under."""

    seq: int
    session_id: int
    report: Report


class JournalError(OSError):
    """The journal cannot be written: the launcher must not run jobs it cannot account for."""


class Journal:
    """This launcher's journal file (see the module); thread-safe."""

    def __init__(self, site_dir: Path, *, site_id: int) -> None:
        self.directory = site_dir / DIR
        host = _host()
        self.host = host
        self.pid = os.getpid()
        self.path = self.directory / f"{host}-{self.pid}-{int(time.time())}{SUFFIX}"
        self.site_id = site_id
        self._fd = -1
        self._lock = threading.Lock()
        self._seq = 0
        self._dirty = False
        self._open_seqs: set[int] = set()

    def open(self) -> Journal:
        """Create the file, locked and with its header, under its name in one step.

        It is made under a name that ``orphans`` does not look at, locked, given its
        header, and only then renamed (the lock stays with the file): another launcher
        starting at the same moment must never find it under its own name unlocked and
        empty, and take it for an orphan to send and remove (8 launchers started at once
        did: one died with EAGAIN on its own lock).
        """
        fresh = self.path.with_name(self.path.name + NEW)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._write_header()
            os.rename(fresh, self.path)
            _sync_dir(self.directory)
        except OSError as exc:
            raise JournalError(
                exc.errno, f"cannot open the outcome journal {self.path}: {exc.strerror}"
            ) from None
        return self

    def _write_header(self) -> None:
        header = {
            "journal": 1,
            "host": self.host,
            "pid": self.pid,
            "site_id": self.site_id,
            "started": time.time(),
            # what the processes it starts carry: a successor kills what is left of them
            "mark": leftovers.mark(),
        }
        self._write([header])

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        self._write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))

    def _write_text(self, text: str) -> None:
        data = text.encode()
        try:
            os.write(self._fd, data)
        except OSError as exc:
            raise JournalError(
                exc.errno, f"cannot write the outcome journal {self.path}: {exc.strerror}"
            ) from None
        self._dirty = True

    def append(self, session_id: int, reports: Iterable[Report]) -> list[Entry]:
        """Write ``reports`` (in order) and return them numbered."""
        with self._lock:
            entries = []
            for r in reports:
                self._seq += 1
                entries.append(Entry(self._seq, session_id, r))
            self._write_entries(entries)
            return entries

    def adopt(self, entries: Iterable[Entry]) -> list[Entry]:
        """Take over another journal's entries (renumbered into this one)."""
        with self._lock:
            out = []
            for e in entries:
                self._seq += 1
                out.append(Entry(self._seq, e.session_id, e.report))
            self._write_entries(out)
            self._sync()
            return out

    def _write_entries(self, entries: list[Entry]) -> None:
        if not entries:
            return
        data = "".join(f'{{"n":{e.seq},"s":{e.session_id},"r":{e.report.json}}}\n' for e in entries)
        self._write_text(data)
        self._open_seqs.update(e.seq for e in entries)

    def sync(self) -> None:
        """Make what was written durable (once per batch, before it is sent)."""
        with self._lock:
            self._sync()

    def _sync(self) -> None:
        if self._dirty and self._fd >= 0:
            os.fsync(self._fd)
            self._dirty = False

    def ack(self, seqs: Iterable[int]) -> None:
        """The server took these: the next launcher need not send them again."""
        seqs = list(seqs)
        if not seqs:
            return
        with self._lock:
            self._write([{"ack": seqs}])
            self._open_seqs.difference_update(seqs)
            if not self._open_seqs and os.fstat(self._fd).st_size > COMPACT_BYTES:
                carried = self._starts_in_flight()
                os.ftruncate(self._fd, 0)
                self._write_header()
                if carried:
                    self._write(carried)

    def _starts_in_flight(self) -> list[dict[str, Any]]:
        """The spawners' start and end lines near the end of the file with no report after
        them: what the coordinator has not heard of yet, which must outlive a compaction.
        Such a line precedes its report, so the tail holds both; it spans far more tasks
        than can be in flight (a spawner's batch is FLUSH_SEC)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - COMPACT_TAIL_BYTES))
                lines = fh.read().split(b"\n")[1:-1]  # whole lines only
        except OSError:
            return []
        starts: dict[int, dict[str, Any]] = {}
        ends: dict[int, dict[str, Any]] = {}
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            if "start" in rec:
                starts[rec["start"]] = rec
            elif "end" in rec:
                ends[rec["end"]] = rec
            elif "n" in rec and isinstance(rec.get("r"), dict):
                job_id = rec["r"].get("id")
                starts.pop(job_id, None)
                if rec["r"].get("state") != JobState.RUNNING.value:
                    ends.pop(job_id, None)
        return [*starts.values(), *ends.values()]

    def note_session(self, session_id: int) -> None:
        with self._lock:
            self._write([{"session": session_id}])

    @property
    def pending(self) -> int:
        return len(self._open_seqs)

    def close(self) -> None:
        """Close; the file (and its ranks' start files) go when everything in it was
        taken, else they stay for the next launcher (the lock goes with the process
        either way)."""
        with self._lock:
            if self._fd < 0:
                return
            with contextlib.suppress(OSError):
                self._sync()
            if not self._open_seqs:
                _remove(self.path)
            os.close(self._fd)
            self._fd = -1


def rank_starts(journal_path: Path, rank: int) -> Path:
    """Where serial mode's worker rank ``rank`` notes the starts of its tasks (see the module)."""
    return journal_path.with_name(f"{journal_path.name}.rank{rank}.starts")


def _rank_files(journal_path: Path) -> list[Path]:
    return sorted(journal_path.parent.glob(f"{journal_path.name}.rank*.starts"))


def _sync_dir(directory: Path) -> None:
    """Make a new name in ``directory`` durable (a journal must outlive a power cut)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(journal_path: Path) -> None:
    for path in [journal_path, *_rank_files(journal_path)]:
        with contextlib.suppress(OSError):
            path.unlink()


# ---------------------------------------------------------------- other launchers' journals


@dataclass(frozen=True)
class Orphan:
    """A dead launcher's journal: what it still had to report, and its lock (held by us)."""

    path: Path
    header: dict[str, Any]
    entries: list[Entry]
    #: the sessions the launcher opened (the last one may still hold jobs on the server).
    sessions: list[int]
    fd: int

    @property
    def same_host(self) -> bool:
        return self.header.get("host") == _host()

    def release(self, *, remove: bool) -> None:
        if remove:
            _remove(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def orphans(site_dir: Path, me: Journal | None = None) -> Iterator[Orphan]:
    """Journals of launchers of this site that are gone, each locked for the caller.

    A journal is an orphan when its lock can be taken (its process holds it while it
    lives) and, for one written on this host, its pid is gone too (a belt to the
    braces of file systems whose locks are not shared between hosts).
    """
    directory = site_dir / DIR
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        if me is not None and path == me.path:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its launcher lives
        header, entries, sessions = read(path)
        if header.get("host") == _host() and _alive(header.get("pid")):
            os.close(fd)
            continue
        yield Orphan(path, header, entries, sessions, fd)


def _host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return pid == os.getpid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(path: Path) -> tuple[dict[str, Any], list[Entry], list[int]]:
    """A journal's header, the entries it holds that were never acknowledged, and the
    sessions its launcher opened."""
    header: dict[str, Any] = {}
    entries: dict[int, Entry] = {}
    sessions: list[int] = []
    #: jobs with any report in the file (acknowledged or not), those with an outcome,
    #: and spawners' starts and clean ends
    reported: set[int] = set()
    concluded: set[int] = set()
    starts: dict[int, tuple[int, int, float]] = {}
    ends: dict[int, tuple[int, int, float, float]] = {}
    #: job -> (state, session, attempt) of its last report in the file
    last: dict[int, tuple[JobState, int, int]] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        log.warning("cannot read journal %s: %s", path, exc)
        return header, [], []
    for rank_file in _rank_files(path):  # start lines only
        with contextlib.suppress(OSError):
            text += "\n" + rank_file.read_text(errors="replace")
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if not isinstance(rec, dict):
            continue
        if "journal" in rec:
            header = rec
        elif "session" in rec:
            if isinstance(rec["session"], int):
                sessions.append(rec["session"])
        elif "ack" in rec:
            for n in rec["ack"]:
                entries.pop(n, None)
        elif "n" in rec:
            try:
                kept = from_model(JobReport.model_validate(rec["r"]))
                entries[rec["n"]] = Entry(rec["n"], int(rec["s"]), kept)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("journal %s: unreadable entry skipped: %s", path, exc)
                continue
            reported.add(kept.id)
            last[kept.id] = (kept.state, int(rec["s"]), kept.attempt)
            if kept.state != JobState.RUNNING:
                concluded.add(kept.id)
        elif "start" in rec:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                starts[int(rec["start"])] = (int(rec["s"]), int(rec["a"]), float(rec["t"]))
        elif "end" in rec:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                ends[int(rec["end"])] = (int(rec["s"]), int(rec["a"]), float(rec["t0"]), float(rec["t"]))
    # starts its launcher never reported (killed first): RUNNING, before everything else
    # (nothing else in the file is about these jobs); numbered below every real entry
    for job_id, (session_id, attempt, t0, _t) in ends.items():
        starts.setdefault(job_id, (session_id, attempt, t0))
    late = [(job_id, *s) for job_id, s in starts.items() if job_id not in reported]
    for i, (job_id, session_id, attempt, t) in enumerate(late):
        started = report(job_id, attempt, JobState.RUNNING, _when(t))
        entries[i - len(late)] = Entry(i - len(late), session_id, started)
        last[job_id] = (JobState.RUNNING, session_id, attempt)
    # clean ends its launcher never reported: RUN_DONE, after everything else
    top = max(entries, default=0)
    unreported = [(job_id, *e) for job_id, e in ends.items() if job_id not in concluded]
    for i, (job_id, session_id, attempt, _t0, t) in enumerate(unreported, start=1):
        done = report(
            job_id,
            attempt,
            JobState.RUN_DONE,
            _when(t),
            return_code=0,
            state_data={"recovered": "finished before its launcher died"},
        )
        entries[top + i] = Entry(top + i, session_id, done)
        last[job_id] = (JobState.RUN_DONE, session_id, attempt)
    # runs it saw begin and not end: they ended with it (its successor on this host kills
    # what is left of them, runner/launcher/leftovers.py). Its session may be gone by
    # the time these reports go (expired), and a late RUNNING sent under the successor's
    # session would make the successor hold a job it does not run, until it ends: a
    # RUN_TIMEOUT closes each run, after everything else, and the job is offered again.
    top = max(entries, default=0)
    died = f"its launcher died (pid {header.get('pid')} on {header.get('host')})"
    now = datetime.now(UTC)
    # (a RUNNING the server took is its session's to close: its end or expiry does)
    to_send = {e.report.id for e in entries.values() if e.report.state is JobState.RUNNING}
    running = [
        (job_id, *held)
        for job_id, (state, *held) in last.items()
        if state is JobState.RUNNING and job_id in to_send
    ]
    for i, (job_id, session_id, attempt) in enumerate(running, start=1):
        ended = report(job_id, attempt, JobState.RUN_TIMEOUT, now, state_data={"reason": died})
        entries[top + i] = Entry(top + i, session_id, ended)
    return header, [entries[n] for n in sorted(entries)], sessions


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)
