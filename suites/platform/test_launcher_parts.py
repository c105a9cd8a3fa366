"""Launcher building blocks without a server: the journal, tasks, the exit note."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.waiting import wait_until
from runner.client import Client
from runner.launcher import journal as journals
from runner.launcher import workdir as wd
from runner.launcher.outcome import Outcome
from runner.launcher.reporter import Reporter
from runner.launcher.session import LauncherSession
from runner.launcher.sink import OutcomeSink
from runner.launcher.tasks import TaskError, TaskFactory
from runner.models import Job, JobReport
from runner.states import JobState


def _report(job_id: int, state: JobState) -> journals.Report:
    return journals.report(job_id, 0, state, datetime.now(UTC))


def test_journal_keeps_what_was_not_acknowledged_and_skips_a_torn_line(tmp_path: Path) -> None:
    j = journals.Journal(tmp_path, site_id=3).open()
    j.note_session(7)
    first = j.append(7, [_report(1, JobState.RUNNING), _report(2, JobState.RUNNING)])
    j.append(7, [_report(1, JobState.RUN_DONE)])
    j.ack(e.seq for e in first)
    j.sync()
    with j.path.open("a") as fh:  # a kill in the middle of a write
        fh.write('{"n": 99, "s": 7, "r": {"id"')
    header, entries, sessions = journals.read(j.path)
    assert header["site_id"] == 3 and sessions == [7]
    assert [(e.session_id, e.report.id, e.report.state) for e in entries] == [(7, 1, JobState.RUN_DONE)]
    assert j.pending == 1
    j.close()
    assert j.path.exists()  # a report is still unacknowledged: kept for the next launcher


def test_a_start_only_a_spawner_noted_becomes_a_running_report(tmp_path: Path) -> None:
    """A task queued behind another is started by its spawner, which notes the start in
    the journal first; if the launcher died before it reported that start, the journal
    still yields its RUNNING (issue 16 item 8: every real start leaves a RUNNING Event)."""
    j = journals.Journal(tmp_path, site_id=3).open()
    j.note_session(7)
    j.ack(e.seq for e in j.append(7, [_report(1, JobState.RUNNING)]))
    with j.path.open("a") as fh:  # as spawner.Spawner._journal_start writes them
        fh.write('{"start":1,"s":7,"a":0,"t":1.5}\n{"start":2,"s":7,"a":3,"t":2.5}\n')
    _header, entries, _ = journals.read(j.path)
    # job 1's start was reported (and acknowledged: its session's end closes that run);
    # job 2's only noted: its RUNNING now, and the run closed, since it died with its
    # launcher (the successor may have to send both under its own session)
    assert [(e.session_id, e.report.id, e.report.attempt, e.report.state) for e in entries] == [
        (7, 2, 3, JobState.RUNNING),
        (7, 2, 3, JobState.RUN_TIMEOUT),
    ]
    started = JobReport.model_validate_json(entries[0].report.json)
    assert started.timestamp == datetime.fromtimestamp(2.5, tz=UTC)
    ended = JobReport.model_validate_json(entries[1].report.json)
    assert ended.state_data["reason"] == f"its launcher died (pid {os.getpid()} on {j.host})"
    j.close()


def test_a_worker_ranks_start_file_is_read_with_its_journal_and_goes_with_it(tmp_path: Path) -> None:
    """Serial mode's worker ranks on other nodes note starts in a file of their own
    (appends from several hosts to one file are not atomic on NFS)."""
    j = journals.Journal(tmp_path, site_id=3).open()
    j.note_session(7)
    j.ack(e.seq for e in j.append(7, [_report(1, JobState.RUNNING)]))
    starts = journals.rank_starts(j.path, 2)
    starts.write_text('{"start":1,"s":7,"a":0,"t":1.5}\n{"start":4,"s":7,"a":0,"t":2.5}\n')
    _header, entries, _ = journals.read(j.path)
    assert [(e.report.id, e.report.state) for e in entries] == [
        (4, JobState.RUNNING),
        (4, JobState.RUN_TIMEOUT),
    ]
    j.close()  # everything was acknowledged: the journal and its ranks' files go
    assert not j.path.exists() and not starts.exists()


def test_a_compaction_keeps_the_starts_the_coordinator_has_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An all-acknowledged journal starts over, but a spawner's start or end the
    coordinator has not reported yet is carried into the new file."""
    monkeypatch.setattr(journals, "COMPACT_BYTES", 1000)
    j = journals.Journal(tmp_path, site_id=3).open()
    j.note_session(7)
    with j.path.open("a") as fh:  # as spawner.Spawner._journal_start writes them
        fh.write(
            '{"start":1,"s":7,"a":0,"t":1.5}\n{"start":2,"s":7,"a":0,"t":2.5}\n'
            '{"end":2,"s":7,"a":0,"t0":2.5,"t":2.6}\n{"end":1,"s":7,"a":0,"t0":1.5,"t":1.6}\n'
        )
    j.ack(e.seq for e in j.append(7, [_report(i, JobState.RUNNING) for i in (1, 3, 4, 5, 6, 7, 8)]))
    j.ack(e.seq for e in j.append(7, [_report(1, JobState.RUN_DONE)]))
    assert j.path.stat().st_size < 1000  # it started over
    _header, entries, _ = journals.read(j.path)
    assert [(e.report.id, e.report.state) for e in entries] == [(2, JobState.RUNNING), (2, JobState.RUN_DONE)]
    j.close()


def test_a_clean_end_only_a_spawner_noted_becomes_a_run_done_report(tmp_path: Path) -> None:
    """A journaled start is sent by the next launcher, and the session's expiry would then
    start a new attempt and run the job again: so a clean end the spawner noted and
    nobody reported becomes its RUN_DONE, after its RUNNING; an outcome already in the
    file wins."""
    j = journals.Journal(tmp_path, site_id=3).open()
    j.note_session(7)
    j.append(7, [_report(1, JobState.RUNNING)])  # reported RUNNING, not its end
    j.append(7, [_report(3, JobState.RUNNING), _report(3, JobState.RUN_ERROR)])
    with j.path.open("a") as fh:  # as spawner.Spawner._journal_start and _journal_end write them
        fh.write(
            '{"start":1,"s":7,"a":0,"t":1.0}\n{"end":1,"s":7,"a":0,"t0":1.0,"t":1.5}\n'
            '{"start":2,"s":7,"a":2,"t":2.0}\n{"end":2,"s":7,"a":2,"t0":2.0,"t":2.5}\n'
            '{"end":3,"s":7,"a":0,"t0":3.0,"t":3.5}\n'
        )
    _header, entries, _ = journals.read(j.path)
    got = [(e.report.id, e.report.attempt, e.report.state) for e in entries]
    assert got == [
        (2, 2, JobState.RUNNING),  # a start nobody reported, first
        (1, 0, JobState.RUNNING),
        (3, 0, JobState.RUNNING),
        (3, 0, JobState.RUN_ERROR),
        (1, 0, JobState.RUN_DONE),
        (2, 2, JobState.RUN_DONE),  # the ends, last
    ]
    done = JobReport.model_validate_json(entries[-1].report.json)
    assert done.return_code == 0 and done.timestamp == datetime.fromtimestamp(2.5, tz=UTC)
    assert done.state_data == {"recovered": "finished before its launcher died"}
    j.close()


def test_a_journal_is_an_orphan_only_once_its_launcher_is_gone(tmp_path: Path) -> None:
    mine = journals.Journal(tmp_path, site_id=1).open()
    mine.append(4, [_report(9, JobState.RUN_DONE)])
    # another launcher (here: the same process, another open file) sees it locked
    assert list(journals.orphans(tmp_path)) == []
    mine.close()  # its lock goes with it (as with a process that dies)
    dead = journals.Journal(tmp_path, site_id=1)
    dead.path = tmp_path / journals.DIR / "otherhost-123-1.jsonl"
    dead.path.write_text(mine.path.read_text().replace(f'"host":"{mine.host}"', '"host":"otherhost"'))
    mine.path.unlink()
    (orphan,) = journals.orphans(tmp_path)
    assert [e.report.id for e in orphan.entries] == [9] and not orphan.same_host
    orphan.release(remove=True)
    assert not dead.path.exists()


def test_a_journal_being_created_is_never_taken_for_an_orphan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another launcher of the site looks for orphans whenever it starts, also while
    this one is creating its journal (8 launchers started at once: one found another's
    journal created but not locked yet, took it for an orphan, and the owner died on
    its own lock). Here the other launcher looks at the worst moment: right before the
    new journal's lock is taken."""
    found: list[list[journals.Orphan]] = []
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        if not found:
            found.append([])  # the journal's own lock comes first; the look uses the real one
            found[0].extend(journals.orphans(tmp_path))
        real_flock(fd, operation)

    monkeypatch.setattr(journals.fcntl, "flock", flock)
    j = journals.Journal(tmp_path, site_id=1).open()
    for orphan in found[0]:
        orphan.release(remove=False)
    monkeypatch.undo()
    assert found == [[]]
    assert list(journals.orphans(tmp_path)) == []  # under its name, locked
    assert sorted(p.name for p in (tmp_path / journals.DIR).iterdir()) == [j.path.name]
    header, entries, _sessions = journals.read(j.path)
    assert header["pid"] == os.getpid() and entries == []
    j.close()


def test_an_acknowledged_journal_is_removed_on_close(tmp_path: Path) -> None:
    j = journals.Journal(tmp_path, site_id=1).open()
    j.ack(e.seq for e in j.append(1, [_report(1, JobState.RUNNING)]))
    j.close()
    assert not j.path.exists()


def test_workdir_may_not_leave_the_data_directory(tmp_path: Path) -> None:
    from types import SimpleNamespace

    factory = TaskFactory(tmp_path, {})
    assert factory.workdir(SimpleNamespace(workdir="app/1")) == (tmp_path / "app/1").resolve()  # type: ignore[arg-type]
    for bad in ("../x", "/etc", "a/../../x"):
        with pytest.raises(TaskError, match="leaves"):
            factory.workdir(SimpleNamespace(workdir=bad))  # type: ignore[arg-type]


def test_the_exit_note_falls_back_to_a_file_without_extended_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the workdir's file system has no user attributes (setxattr answers ENOTSUP),
    the note is the .tolu-exit.json file; a note left in the attribute by an earlier
    attempt does not shadow it."""
    import errno

    w = str(tmp_path / "w")
    wd.prepare(w)
    wd.note_success(w, 5, 10, 0, 1.0, 2.0)  # attempt 0, in the attribute
    assert os.getxattr(w, wd.EXIT_XATTR)

    def no_xattrs(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", no_xattrs)
    wd.note_success(w, 5, 11, 1, 3.0, 4.0)  # attempt 1, in the file
    record = wd.read_note(w)
    assert record is not None and (record["attempt"], record["started"]) == (1, 3.0)
    assert (tmp_path / "w" / wd.EXIT_FILE).is_file()
    with pytest.raises(OSError):
        os.getxattr(w, wd.EXIT_XATTR)


def test_the_exit_note_fits_inside_the_inode_and_older_notes_still_read(tmp_path: Path) -> None:
    """The attribute holds five numbers, short enough to stay in an ext4 inode (a longer
    value takes a block of its own per job); a JSON note an older launcher left reads too."""
    w = str(tmp_path / "w")
    wd.prepare(w)
    started, ended = 1795000000.123456, 1795000000.987654
    # the largest ids a site plausibly reaches: ten-digit jobs, seven-digit sessions
    assert len(wd.short_note(9_999_999_999, 9_999_999, 99, started, ended)) <= wd.IN_INODE_BYTES
    wd.note_success(w, 1_234_567, 890, 2, started, ended)
    assert os.getxattr(w, wd.EXIT_XATTR) == b"1234567 890 2 1795000000.123456 1795000000.987654"
    assert wd.read_note(w) == {
        "job_id": 1_234_567, "session_id": 890, "attempt": 2, "started": started, "ended": ended,
    }  # fmt: skip
    older = b'{"job_id": 5, "session_id": 10, "attempt": 1, "started": 1.5, "ended": 2.5}'
    os.setxattr(w, wd.EXIT_XATTR, older)
    record = wd.read_note(w)
    assert record is not None and wd.lost_success(record, 5, 11, 1) and record["ended"] == 2.5
    os.setxattr(w, wd.EXIT_XATTR, b"5 10 not-a-note")
    assert wd.read_note(w) is None


def test_noted_success_is_recovered_only_for_the_lost_attempt(tmp_path: Path) -> None:
    w = str(tmp_path / "w")
    wd.prepare(w)
    wd.note_success(w, 5, 10, 1, 1.0, 2.0)  # job 5, session 10, attempt 1
    record = wd.read_note(w)
    assert record is not None and (record["started"], record["ended"]) == (1.0, 2.0)
    # nothing reached the server: the expired session handed the job back in the same attempt
    assert wd.lost_success(record, 5, 11, 1)
    # the same session, another job: run it
    assert not wd.lost_success(record, 5, 10, 1)
    assert not wd.lost_success(record, 6, 11, 1)
    # a later attempt: every move to RESTART_READY starts one (a timeout, a hook, a user's
    # retry after a hook failed the success: issue 16 defect 3), and it always runs
    assert not wd.lost_success(record, 5, 11, 2)
    assert not wd.lost_success(record, 5, 11, 3)


def test_an_idle_launcher_asks_again_soon_then_once_a_second() -> None:
    """After the server runs dry the fetcher asks again after 50 ms, doubling each empty
    answer up to IDLE_ACQUIRE_SEC: a job created just then waits for the queue, not for
    a one-second poll."""
    from runner.launcher.fetcher import FIRST_IDLE_SEC, IDLE_ACQUIRE_SEC, Fetcher

    fetcher = Fetcher(None)  # type: ignore[arg-type]  # no request is made here
    waits = []
    for empty in range(1, 9):
        fetcher._empty = empty
        waits.append(fetcher.idle_wait())
    assert waits[0] == FIRST_IDLE_SEC and waits[1] == 2 * FIRST_IDLE_SEC
    assert waits == sorted(waits) and waits[-1] == IDLE_ACQUIRE_SEC


def test_a_launcher_holding_work_asks_again_when_half_of_it_is_done() -> None:
    """An empty answer while the launcher holds 0.6 s of work: the next ask waits 0.3 s,
    not 50 ms (what it acquired sooner could not start sooner); at most once a second."""
    from runner.launcher.fetcher import FIRST_IDLE_SEC, IDLE_ACQUIRE_SEC, Fetcher

    fetcher = Fetcher(None)  # type: ignore[arg-type]  # no request is made here
    fetcher._empty = 1
    fetcher.hold_sec = 0.6
    assert fetcher.idle_wait() == pytest.approx(0.3)
    fetcher.hold_sec = 60.0
    assert fetcher.idle_wait() == IDLE_ACQUIRE_SEC
    fetcher.hold_sec = 0.0  # nothing in hand: the usual backoff
    assert fetcher.idle_wait() == FIRST_IDLE_SEC


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def test_a_rate_counts_from_when_the_work_began(monkeypatch: pytest.MonkeyPatch) -> None:
    """How many jobs a launcher asks for and how deep it chains follow the finishing
    rate: 250 jobs done 0.1 s after the first started is 2,500 per second at once, not
    500 (counted over at least half a second) until half a second has gone."""
    from runner.launcher import pacing

    clock = _Clock()
    monkeypatch.setattr(pacing, "time", clock)
    meter, unknown = pacing.RateMeter(), pacing.RateMeter()
    meter.begin()
    clock.now += 0.1
    meter.add(250)
    unknown.add(250)
    assert meter.rate() == pytest.approx(2500)
    assert unknown.rate() == pytest.approx(500)  # the beginning not known: the old reading
    # a second begin() while working changes nothing
    meter.begin()
    clock.now += 0.1
    meter.add(250)
    assert meter.rate() == pytest.approx(2500)
    # idle for a minute, then a new burst: counted from its own beginning
    meter.idle()
    clock.now += 60
    meter.begin()
    clock.now += 0.2
    meter.add(10)
    assert meter.rate() == pytest.approx(50)
    # a burst of instant failures is not read as a rate beyond measure
    burst = pacing.RateMeter()
    burst.begin()
    burst.add(100)
    assert burst.rate() == pytest.approx(100 / pacing.RateMeter.MIN_BEGUN_SPAN_SEC)


def test_serial_mode_on_one_node_starts_without_mpi(tmp_path: Path) -> None:
    """One node: one rank that talks to no other, started directly (no mpiexec, no MPI
    library: serial mode runs on an install without an MPI); several: mpiexec, rank 0 and
    a worker on the first node. An app launcher name nobody knows is an error either way."""
    from runner.launcher import serial_start
    from runner.launcher.options import LauncherOptions
    from runner.launcher.serial_mode import NO_MPI
    from runner.platform.nodes import Node
    from runner.registry import UnknownName
    from runner.site.settings import LauncherSettings

    opts = LauncherOptions(site_dir=tmp_path, mode="serial")
    mpich = LauncherSettings(mpi_launcher="mpich", mpiexec="mpiexec")
    one = serial_start.command(opts, mpich, [Node("n1", 4)])
    assert one[-1] == NO_MPI and "mpiexec" not in one
    assert one[-4:-2] == ["-m", "runner.launcher.serial_mode"]
    two = serial_start.command(opts, mpich, [Node("n1", 4), Node("n2", 4)])
    assert two[0] == "mpiexec" and NO_MPI not in two and "n1:2,n2:1" in " ".join(two)
    with pytest.raises(UnknownName, match="nosuch"):
        serial_start.command(opts, LauncherSettings(mpi_launcher="nosuch"), [Node("n1", 4)])


def test_an_mpiexec_that_outlives_rank_0_is_ended_with_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hydra can lose a proxy while it forwards SIGTERM and then wait for the other one
    forever: once rank 0 has ended (its exit file), mpiexec gets AFTER_RANK0_SEC to follow."""
    from runner.launcher import serial_start

    monkeypatch.setattr(serial_start, "AFTER_RANK0_SEC", 0.5)
    exit_file = tmp_path / "launcher.exit"
    pid_file = tmp_path / "rank.pid"
    # "mpiexec": rank 0 ends (the exit file), a rank below it never does
    script = f"sleep 300 & echo $! > {pid_file}; printf '0\\tfinished\\n' > {exit_file}; wait"
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    assert serial_start.wait_mpiexec(proc, exit_file) == -signal.SIGKILL
    rank = int(pid_file.read_text())
    wait_until(lambda: not _alive(rank), timeout=30, what="the rank below mpiexec ended too")
    # an mpiexec that ends by itself is waited for as it is
    proc = subprocess.Popen(["sh", "-c", "exit 3"], start_new_session=True)
    assert serial_start.wait_mpiexec(proc, exit_file) == 3


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_report_is_the_json_the_server_reads_and_a_nul_in_it_becomes_u_fffd() -> None:
    """journal.report encodes without pydantic: what it writes must read back as the
    same JobReport, and a task's output may carry NUL bytes into its failure's tail,
    which no database text can hold (the server would refuse the whole report)."""
    when = datetime(2026, 11, 27, 2, 4, 29, 458955, tzinfo=UTC)
    r = journals.report(
        12,
        3,
        JobState.RUN_ERROR,
        when,
        return_code=2,
        state_data={"tail": "boom\x00\n", "return_code": 2},
        data={"k": ["a\x00"]},
    )
    back = JobReport.model_validate_json(r.json)
    assert (r.id, r.attempt, r.state) == (back.id, back.attempt, back.state) == (12, 3, JobState.RUN_ERROR)
    assert back.timestamp == when and back.return_code == 2
    assert back.state_data == {"tail": "boom\ufffd\n", "return_code": 2} and back.data == {"k": ["a\ufffd"]}
    # fields not given are not sent (the server's defaults apply), as pydantic's exclude_unset did
    plain = journals.report(5, 0, JobState.RUNNING, when)
    sent = JobReport.model_validate_json(plain.json).model_fields_set
    assert sent == {"id", "attempt", "state", "timestamp"}


def _held_job(job_id: int) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=job_id, app_id=1, site_id=3, state=JobState.PREPROCESSED, idempotency_key=None, parents=[],
        parameters={}, serialized_args="", tags={}, environment={}, workdir=f"w/{job_id}", num_nodes=1,
        ranks_per_node=1, threads_per_rank=1, gpus_per_rank=0, node_packing_count=1, wall_time_min=0,
        return_code=None, retry_count=0, retry_limit=0, attempt=2, data={}, batch_job_id=None,
        session_id=7, created_at=now, updated_at=now,
    )


def test_a_task_that_ends_in_the_batch_it_started_in_is_one_report(tmp_path: Path) -> None:
    """The sink's reports, as the journal keeps them for the server: a start and an end
    heard together are one outcome that carries the start (``run_started``); a start heard
    alone is a RUNNING, and its later end an outcome alone. Nothing is sent (no server)."""
    j = journals.Journal(tmp_path, site_id=3).open()
    client = Client("http://127.0.0.1:9", "no-server")
    sink = OutcomeSink(Reporter(client, LauncherSession(client, 3), j, interval_sec=60))
    for job_id in (1, 2, 3):
        sink.hold(_held_job(job_id), 7)
    sink.report(started=[(1, 10.25), (2, 10.5)], done=[Outcome(1, 0, 10.25, 10.75)])
    sink.report(done=[Outcome(2, 4, 10.5, 11.0)])
    sink.report(started=[(3, 12.0)], done=[Outcome(3, 0, 12.0, 12.5, result={"x": 1})])
    _header, entries, _ = journals.read(j.path)
    sent = [JobReport.model_validate_json(e.report.json) for e in entries]
    assert [(r.id, r.attempt, r.state) for r in sent] == [
        (2, 2, JobState.RUNNING),  # a batch's starts come before its ends
        (1, 2, JobState.RUN_DONE),
        (2, 2, JobState.RUN_ERROR),
        (3, 2, JobState.RUN_DONE),
    ]
    assert [r.run_started and r.run_started.timestamp() for r in sent] == [None, 10.25, None, 12.0]
    assert [r.timestamp.timestamp() for r in sent] == [10.5, 10.75, 11.0, 12.5]
    assert sent[3].data == {"x": 1} and sent[2].return_code == 4
    assert sink.running == 0
    j.close()
