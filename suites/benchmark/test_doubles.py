"""harness/bench/doubles.py: runs that overlap, from Event histories and task journals."""

from __future__ import annotations

import math
from pathlib import Path

from harness.bench import doubles
from harness.bench.history import Step


def steps(*moves: tuple[str | None, str, float]) -> list[Step]:
    return [Step(i, a, b, at, {}) for i, (a, b, at) in enumerate(moves, start=1)]


CREATED = [(None, "CREATED", 0.0), ("CREATED", "STAGED_IN", 0.0), ("STAGED_IN", "PREPROCESSED", 0.0)]


def test_a_run_after_a_timeout_is_a_rerun_not_a_double() -> None:
    job = steps(
        *CREATED,
        ("PREPROCESSED", "RUNNING", 1.0),
        ("RUNNING", "RUN_TIMEOUT", 40.0),  # the session expired
        ("RUN_TIMEOUT", "RESTART_READY", 40.0),
        ("RESTART_READY", "RUNNING", 41.0),
        ("RUNNING", "RUN_DONE", 42.0),
    )
    assert doubles.running_stretches(job) == [(1.0, 40.0), (41.0, 42.0)]
    found = doubles.find({7: job}, None)
    assert found.history == [] and found.rerun == [7] and found.replayed_starts == 0


def test_a_start_that_began_before_the_last_run_ended_is_a_double() -> None:
    # a late report: the second RUNNING says it started while the first stretch was open
    job = steps(
        *CREATED,
        ("PREPROCESSED", "RUNNING", 1.0),
        ("RUNNING", "RUN_TIMEOUT", 40.0),
        ("RUN_TIMEOUT", "RESTART_READY", 40.0),
        ("RESTART_READY", "RUNNING", 30.0),
        ("RUNNING", "RUN_DONE", 45.0),
    )
    assert doubles.find({7: job}, None).history == [7]


def test_one_start_recorded_twice_is_a_replay() -> None:
    # a launcher re-sends a start the server had given up on: the same timestamp again
    job = steps(
        *CREATED,
        ("PREPROCESSED", "RUNNING", 6.0),
        ("RUNNING", "RUN_TIMEOUT", 50.0),
        ("RUN_TIMEOUT", "RESTART_READY", 50.0),
        ("RESTART_READY", "RUNNING", 6.0),
        ("RUNNING", "RUN_DONE", 6.1),
    )
    assert doubles.merge_replays(doubles.running_stretches(job)) == [(6.0, 50.0)]
    found = doubles.find({3: job}, {3: [(6.0, 6.1)]})
    assert found.history == [] and found.replayed == [3] and found.replayed_starts == 1
    assert found.rerun == [] and found.unrecorded_starts == 0


def test_a_stretch_never_closed_stays_open() -> None:
    job = steps(*CREATED, ("PREPROCESSED", "RUNNING", 5.0))
    assert doubles.running_stretches(job) == [(5.0, math.inf)]
    assert doubles.overlaps([(5.0, math.inf), (100.0, 101.0)])
    assert not doubles.overlaps([(1.0, 2.0), (2.0, 3.0)]), "one ending as the next starts is no overlap"


def test_the_journal_pairs_runs_and_ends_killed_ones_at_the_kill(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    journal.write_text(
        "1 100 s 10.0\n"
        "1 100 e 10.5\n"
        "2 101 s 11.0\n"  # killed with its launcher at 12.0
        "2 102 s 20.0\n"
        "2 102 e 20.2\n"
        "3 103 s 21.0\n"
        "3 104 s 21.5\n"  # two runs of job 3 at once
        "3 103 e 22.0\n"
        "3 104 e 22.5\n"
        "4 105 s 30\n"  # no kill after it: still running
        "5 106 s 3"  # cut short by a kill in the middle of a write
    )
    runs = doubles.read_journal(journal, kills=[12.0])
    assert runs[1] == [(10.0, 10.5)]
    assert sorted(runs[2]) == [(11.0, 12.0), (20.0, 20.2)]
    assert runs[4] == [(30.0, math.inf)]
    assert 5 not in runs
    history = {
        2: steps(*CREATED, ("PREPROCESSED", "RUNNING", 20.0), ("RUNNING", "RUN_DONE", 20.2)),
        3: steps(*CREATED, ("PREPROCESSED", "RUNNING", 21.0), ("RUNNING", "RUN_DONE", 22.0)),
    }
    found = doubles.find(history, runs)
    assert found.journal == [3]
    # job 2's killed first run and job 3's second run never reached the history
    assert found.unrecorded == [2, 3] and found.unrecorded_starts == 2
