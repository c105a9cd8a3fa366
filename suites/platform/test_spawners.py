"""Spawner processes and the engine, without a server: real children, real spawner processes."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from harness.waiting import wait_until
from runner.launcher import journal as journals
from runner.launcher.engine import MAX_DEPTH, Engine, Start, chain_depth, refill_mark
from runner.launcher.spawner import Spawn, queued_behind
from runner.launcher.spawners import Ended, Events, SpawnerError, SpawnerPool
from runner.launcher.tasks import Task
from runner.launcher.workdir import EXIT_FILE, EXIT_XATTR, note_success, read_note
from runner.models import JobReport
from runner.platform.node_manager import Assignment, NodeManager
from runner.platform.nodes import Node
from runner.states import JobState


@pytest.fixture
def pool() -> SpawnerPool:
    p = SpawnerPool(2, {"PATH": os.environ["PATH"]}).start()
    yield p
    p.close()


def collect(pool: SpawnerPool, got: Events) -> Events:
    """One ``pool.wait`` (it blocks until the spawners report), added to ``got``."""
    ev = pool.wait(1.0)
    got.started += ev.started
    got.exits += ev.exits
    got.start_errors += ev.start_errors
    got.cancelled += ev.cancelled
    return got


def drain(pool: SpawnerPool, want: int) -> Events:
    """Every event until ``want`` tasks have ended (exit, failed or cancelled start)."""
    got = Events()
    return wait_until(
        lambda: collect(pool, got), timeout=60, interval=0, what=f"{want} tasks to end",
        check=lambda g: len(g.exits) + len(g.start_errors) + len(g.cancelled) >= want,
    )


def submit(pool: SpawnerPool, key: int, argv: list[str], tmp: Path, **kw: object) -> str:
    w = str(tmp / f"w{key}")
    pool.submit(key, argv, workdir=w, out_path=w + "/job.out", **kw)  # type: ignore[arg-type]
    return w


def test_exits_failures_and_tails_come_back_with_their_times(pool: SpawnerPool, tmp_path: Path) -> None:
    submit(pool, 1, ["sh", "-c", "echo out; echo err >&2; exit 7"], tmp_path)
    submit(pool, 2, ["/no/such/program"], tmp_path)
    w3 = submit(pool, 3, [sys.executable, "-c", "import time; time.sleep(0.3)"], tmp_path,
                note=(3, 9, 0))
    submit(pool, 4, ["sh", "-c", "echo $TOLU_X"], tmp_path, env={"TOLU_X": "over the base"})
    got = drain(pool, 4)
    by_key = {e.key: e for e in got.exits}
    assert by_key[1].returncode == 7 and by_key[1].tail == "out\nerr\n"
    assert by_key[3].returncode == 0 and by_key[3].tail == ""
    assert by_key[3].started <= by_key[3].ended
    assert (tmp_path / "w4" / "job.out").read_text() == "over the base\n"
    assert got.start_errors == [(2, "cannot start '/no/such/program': No such file or directory")]
    assert {k for k, _ in got.started} == {1, 3, 4}
    # the clean exit was noted on the workdir by the spawner, before anyone reported it: in
    # its extended attribute (no file made per job) where the file system has them
    note = read_note(w3)
    assert note is not None and (note["job_id"], note["session_id"], note["attempt"]) == (3, 9, 0)
    assert os.getxattr(w3, EXIT_XATTR) and not (Path(w3) / EXIT_FILE).exists()
    assert len(pool) == 0


def test_many_short_tasks_at_once_all_come_back_with_their_exits(pool: SpawnerPool, tmp_path: Path) -> None:
    # Starts and ends interleave in each spawner: a task ends while the next one, just
    # spawned, still holds a copy of its pidfd (until its close-on-exec). A spawner that
    # closed a pidfd without taking it out of its epoll set died here on a closed fd.
    key = 0
    for _ in range(10):
        for _ in range(30):
            key += 1
            submit(pool, key, ["true"], tmp_path)
        got = drain(pool, 30)
        assert got.start_errors == [] and [e.returncode for e in got.exits] == [0] * 30
    assert len(pool) == 0


def test_a_success_noted_by_a_dead_session_is_reported_not_run_again(
    pool: SpawnerPool, tmp_path: Path
) -> None:
    w = tmp_path / "w5"
    w.mkdir()
    note_success(str(w), 5, 8, 0, 100.0, 101.0)  # session 8 ran it, then died unreported
    submit(pool, 5, ["touch", "ran"], tmp_path, note=(5, 9, 0))
    submit(pool, 6, ["touch", "ran"], tmp_path, note=(6, 9, 0))  # fresh: runs
    got = drain(pool, 2)
    by_key = {e.key: e for e in got.exits}
    assert by_key[5].recovered and (by_key[5].started, by_key[5].ended) == (100.0, 101.0)
    assert not (w / "ran").exists()
    assert not by_key[6].recovered and (tmp_path / "w6" / "ran").exists()


def test_wall_time_kills_the_whole_process_group(pool: SpawnerPool, tmp_path: Path) -> None:
    # the shell's child (sleep) must die too, not only the shell
    submit(pool, 1, ["sh", "-c", "sleep 60 & echo $! > child; wait"], tmp_path, wall_time_sec=0.3)
    (ex,) = drain(pool, 1).exits
    assert ex.timed_out and not ex.stopped and ex.returncode != 0
    child = (tmp_path / "w1" / "child").read_text().strip()
    wait_until(lambda: not Path(f"/proc/{child}").exists(), timeout=30, what=f"child {child} to die")


def test_a_successor_starts_in_its_slot_and_stop_cancels_the_rest(pool: SpawnerPool, tmp_path: Path) -> None:
    submit(pool, 1, ["sh", "-c", "sleep 0.2; date +%s.%N > t1"], tmp_path)
    submit(pool, 2, ["sleep", "60"], tmp_path, after=1)
    submit(pool, 3, ["true"], tmp_path, after=2)
    seen = Events()
    got = wait_until(lambda: collect(pool, seen), timeout=60, interval=0, what="the successor's start",
                     check=lambda g: 2 in dict(g.started))
    started = dict(got.started)
    # 2 waited for 1's end, in the same spawner, without the coordinator
    assert [e.key for e in got.exits] == [1]
    assert started[2] >= got.exits[0].ended
    pool.terminate_all()
    rest = drain(pool, 2)
    assert [(e.key, e.stopped) for e in rest.exits] == [(2, True)]
    assert rest.cancelled == [3]


def test_a_new_chain_goes_to_the_spawner_holding_the_fewest_tasks(pool: SpawnerPool, tmp_path: Path) -> None:
    # each task writes the pid of the spawner that started it (the shell's parent)
    parent = ["sh", "-c", 'echo $PPID > parent; [ "$1" = hold ] && exec sleep 60', "sh"]
    submit(pool, 1, [*parent, "hold"], tmp_path)  # holds the first spawner
    submit(pool, 2, [*parent, "go"], tmp_path)  # the second; ends at once
    drain(pool, 1)
    # the turn is back at the first spawner, which still runs task 1: the next chain
    # must not queue its starts behind that spawner's while the second one idles
    submit(pool, 3, [*parent, "go"], tmp_path)
    drain(pool, 1)
    held = tmp_path / "w1" / "parent"
    wait_until(lambda: held.exists() and held.read_text().endswith("\n"), timeout=60, what="task 1's note")
    spawner_of = {k: (tmp_path / f"w{k}" / "parent").read_text().strip() for k in (1, 2, 3)}
    assert spawner_of[1] != spawner_of[2]
    assert spawner_of[3] == spawner_of[2]
    pool.terminate_all()
    assert [(e.key, e.stopped) for e in drain(pool, 1).exits] == [(1, True)]


def test_the_pool_is_ready_once_every_spawner_is_up(tmp_path: Path) -> None:
    pool = SpawnerPool(2, {"PATH": os.environ["PATH"]}).start()
    try:
        pool.wait_ready()
        # each one has announced itself: its interpreter is up and past its imports
        assert [Path(f"/proc/{pid}/comm").read_text().strip() for pid in pool.pids] == ["tolu-start"] * 2
    finally:
        pool.close()
    # spawners that cannot start are an error then, not at the first job
    broken = SpawnerPool(1, {}, python="/bin/false", log_path=tmp_path / "spawners.log").start()
    with pytest.raises(SpawnerError, match="no spawner process started"):
        broken.wait_ready()
    broken.close()


def test_a_closed_pool_lets_go_of_its_wake_pipe(tmp_path: Path) -> None:
    """The fetcher's thread may wake the pool after the main thread closed it, and a
    signal may come while the launcher ends its session: neither writes to the pipe's
    old numbers (by then another file's, such as the session's HTTP socket)."""
    pool = SpawnerPool(1, {"PATH": os.environ["PATH"]}).start()
    signal.set_wakeup_fd(pool.wake_fd, warn_on_full_buffer=False)
    pool.close()
    assert signal.set_wakeup_fd(-1) == -1  # no longer the signals' wakeup fd
    reused_r, reused_w = os.pipe()  # likely the numbers the pool's pipe had
    try:
        pool.wake()
        pool.close()  # twice is fine
        os.set_blocking(reused_r, False)
        with pytest.raises(BlockingIOError):
            os.read(reused_r, 1)
    finally:
        os.close(reused_r)
        os.close(reused_w)


def test_a_spawner_that_dies_fails_its_tasks_with_the_reason(pool: SpawnerPool, tmp_path: Path) -> None:
    submit(pool, 1, ["sleep", "60"], tmp_path)
    wait_until(lambda: collect(pool, Events()).started, timeout=60, interval=0, what="the start")
    os.kill(pool.pids[0], signal.SIGKILL)
    got = drain(pool, 1)
    assert got.start_errors[0][0] == 1 and "spawner process running it ended" in got.start_errors[0][1]


def test_the_engine_chains_tasks_of_a_shape_on_their_gpus(pool: SpawnerPool, tmp_path: Path) -> None:
    """One slot with one GPU: the second and third task wait in the spawner behind the
    first and get its GPU; a task of another shape is not chained; everything is freed."""
    nm = NodeManager([Node("n1", 1, 1, gpu_ids=("5",))])
    seen: dict[int, str] = {}

    def build(task: Task, a: Assignment) -> Start:
        seen[task.job_id] = a.env()["CUDA_VISIBLE_DEVICES"]
        return Start(argv=task.argv, workdir=task.workdir, out_path=task.workdir + "/job.out",
                     env={**task.env, **a.env()})

    engine = Engine(nm, pool, build, depth=2)
    tasks = [Task(job_id=i, argv=["sh", "-c", "sleep 0.1; echo $CUDA_VISIBLE_DEVICES"],
                  workdir=str(tmp_path / f"t{i}"), gpus_per_rank=1) for i in (1, 2, 3)]
    other = Task(job_id=4, argv=["true"], workdir=str(tmp_path / "t4"), threads_per_rank=1, gpus_per_rank=0)
    assert isinstance(engine.place(tasks[0]), Assignment)
    assert engine.place(tasks[1]) is True and engine.place(tasks[2]) is True
    assert engine.place(other) is False  # the only CPU is held, and no chain of its shape
    assert engine.backlog == 2.0
    ended = until_ended(engine, pool, 3)
    assert sorted(ended) == [1, 2, 3]
    assert seen == {1: "5", 2: "5", 3: "5"}
    assert [(tmp_path / f"t{i}" / "job.out").read_text() for i in (1, 2, 3)] == ["5\n"] * 3
    assert nm.running == 0 and engine.backlog == 0 and len(engine) == 0
    assert isinstance(engine.place(other), Assignment)
    assert until_ended(engine, pool, 1) == [4]


def test_a_chain_holds_a_tenth_of_a_second_and_asks_for_more_with_30_ms_left() -> None:
    # /bin/true at 600 a second per slot: 60 queued, more asked for with 18 left
    assert (chain_depth(600, 2), refill_mark(600, 60)) == (60, 18)
    # an MPI-mode job of ~7 ms: 15 queued, more with 5 left
    assert (chain_depth(150, 2), refill_mark(150, 15)) == (15, 5)
    # faster than MAX_DEPTH covers: at most half the chain is left when it asks
    assert (chain_depth(100_000, 2), refill_mark(100_000, MAX_DEPTH)) == (MAX_DEPTH, MAX_DEPTH // 2)
    # long tasks: the site's prefetch; no rate yet: ask only when nothing is left
    assert (chain_depth(0.5, 2), refill_mark(0.5, 2)) == (2, 1)
    assert (chain_depth(0.0, 3), refill_mark(0.0, 3)) == (3, 0)


def test_a_spawner_counts_a_slots_queue_only_as_far_as_it_needs() -> None:
    def spawn(key: int, after: int) -> Spawn:
        return Spawn(key, ["true"], "/w", {}, "/w/job.out", 0.0, None, False, after)

    next_of = {k: spawn(k + 1, k) for k in range(1, 10)}  # 1 -> 2 -> ... -> 10
    assert queued_behind(next_of, 1, 100) == 9
    assert queued_behind(next_of, 7, 5) == 3
    assert queued_behind(next_of, 1, 2) == 3  # more than 2: the count stops there
    assert queued_behind(next_of, 10, 4) == 0


def test_chains_that_ask_for_more_when_low_run_every_task_once(pool: SpawnerPool, tmp_path: Path) -> None:
    """One slot, chains paced for fast tasks (each spawner is told to report when a
    chain runs low): every task runs once, in order, and the slot is free at the end."""
    nm = NodeManager([Node("n1", 1, 0)])

    def build(task: Task, a: Assignment) -> Start:
        return Start(argv=task.argv, workdir=task.workdir, out_path=task.workdir + "/job.out", env={})

    engine = Engine(nm, pool, build, depth=2)
    engine.pace(1_000, 2)
    assert (engine.depth, engine.low) == (64, 30)
    tasks = [Task(job_id=i, argv=["sh", "-c", f"echo {i} >> {tmp_path}/order"],
                  workdir=str(tmp_path / f"t{i}")) for i in range(1, 201)]
    waiting = list(tasks)
    ended: list[int] = []

    def step() -> list[int]:
        while waiting and engine.place(waiting[0]):
            waiting.pop(0)
        pool.flush()
        ended.extend(t.job_id for t, _ in engine.handle(pool.wait(0.5)).ended)
        return ended

    wait_until(step, timeout=60, interval=0, what="200 tasks to end", check=lambda e: len(e) >= 200)
    assert sorted(ended) == list(range(1, 201))
    assert (tmp_path / "order").read_text().split() == [str(i) for i in range(1, 201)]
    assert nm.running == 0 and engine.backlog == 0 and len(engine) == 0


def until_ended(engine: Engine, pool: SpawnerPool, n: int) -> list[int]:
    ended: list[int] = []

    def step() -> list[int]:
        ended.extend(t.job_id for t, _ in engine.handle(pool.wait(0.5)).ended)
        return ended

    return wait_until(step, timeout=60, interval=0, what=f"{n} tasks to end", check=lambda e: len(e) >= n)


def test_ended_is_what_outcome_reads() -> None:
    ex = Ended(1, 0, 1.0, 2.0, False, False, "", {})
    assert (ex.key, ex.returncode, ex.tail, ex.result) == (1, 0, "", {})


def test_spawners_journaling_every_start_note_it_before_the_task_runs(tmp_path: Path) -> None:
    """Serial mode's spawners (issue 16, item 8): rank 0 hears of a start only in the
    spawner's next batch, so each start is in the journal before the task runs (each task
    here checks its own line), and a launcher killed before any report still leaves it;
    a clean end is journaled too, so that the next launcher reports it instead of running
    the job again."""
    journal = journals.Journal(tmp_path, site_id=1).open()
    journal.note_session(7)
    pool = SpawnerPool(
        2, {"PATH": os.environ["PATH"]}, journal_path=journal.path, journal_every_start=True
    ).start()
    try:
        for key in (1, 2, 3):
            submit(pool, key, ["sh", "-c", f'grep -q \'"start":{key},\' "$J"'], tmp_path,
                   env={"J": str(journal.path)}, note=(key, 7, 0))
        got = drain(pool, 3)
    finally:
        pool.close()
    assert sorted((e.key, e.returncode) for e in got.exits) == [(1, 0), (2, 0), (3, 0)]
    # as the next launcher reads it: the starts, and the clean ends nobody reported
    _header, entries, _sessions = journals.read(journal.path)
    assert [(e.report.id, e.session_id, e.report.state) for e in entries if e.report.id == 2] == [
        (2, 7, JobState.RUNNING), (2, 7, JobState.RUN_DONE)
    ]
    assert sorted((e.report.id, e.report.state) for e in entries) == [
        (k, state) for k in (1, 2, 3) for state in (JobState.RUNNING, JobState.RUN_DONE)
    ]
    done = {
        e.report.id: JobReport.model_validate_json(e.report.json)
        for e in entries if e.report.state == JobState.RUN_DONE
    }
    by_key = {e.key: e for e in got.exits}
    assert all(done[k].timestamp.timestamp() == pytest.approx(by_key[k].ended) for k in (1, 2, 3))
    journal.close()
