"""Did a job run twice at once? Asked of the Event history and of the tasks' own journal.

- **History**: each Event into RUNNING opens a stretch at its timestamp (when the
  launcher says the task started); the job's next Event out of RUNNING closes it. A
  job whose stretches overlap in time ran twice at once, as far as the server knows.
  Two stretches that start at the very same timestamp are one start reported twice (a
  launcher re-sending a report the server had already given up on): they are counted
  as a *replayed* start, and kept as one stretch that ends at the later of their ends.
- **Journal**: each run of a chaos task appends ``JOB RUN s EPOCH`` when it starts and
  ``JOB RUN e EPOCH`` when it ends (RUN: the shell's pid), so the runs that really
  happened are known whatever the server recorded. A run killed with its launcher
  has no end: it ended at the first launcher kill after its start (the kill takes the
  whole process tree), or it is still running.

Also: how many runs the journal saw that the history has no RUNNING stretch for (a
start the server never heard of).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bench.history import Step

Stretch = tuple[float, float]


def running_stretches(steps: Sequence[Step]) -> list[Stretch]:
    """One job's RUNNING stretches from its Events (in the order they were written)."""
    out: list[Stretch] = []
    start: float | None = None
    for step in steps:
        if step.to_state == "RUNNING":
            if start is not None:
                out.append((start, math.inf))  # RUNNING again without leaving it: never closed
            start = step.at
        elif step.from_state == "RUNNING" and start is not None:
            out.append((start, step.at))
            start = None
    if start is not None:
        out.append((start, math.inf))
    return out


def merge_replays(stretches: Sequence[Stretch]) -> list[Stretch]:
    """Stretches with the same start as one (ending at the later end)."""
    ends: dict[float, float] = {}
    for start, end in stretches:
        ends[start] = max(end, ends.get(start, end))
    return sorted(ends.items())


def overlaps(stretches: Iterable[Stretch]) -> bool:
    """Whether any two stretches overlap (one starts before another has ended)."""
    latest_end = -math.inf
    for start, end in sorted(stretches):
        if start < latest_end:
            return True
        latest_end = max(latest_end, end)
    return False


def read_journal(path: Path, *, kills: Sequence[float] = ()) -> dict[int, list[Stretch]]:
    """Each job's runs from a task journal; a run without an end ended at the next of ``kills``."""
    starts: dict[tuple[int, str], float] = {}
    ends: dict[tuple[int, str], float] = {}
    if path.exists():
        # each line is one write (atomic with O_APPEND); text after the last newline is not a line
        for line in path.read_text(errors="replace").split("\n")[:-1]:
            parts = line.split()
            if len(parts) != 4 or parts[2] not in ("s", "e"):
                continue
            try:
                key, at = (int(parts[0]), parts[1]), float(parts[3])
            except ValueError:
                continue
            (starts if parts[2] == "s" else ends)[key] = at
    ordered = sorted(kills)
    runs: dict[int, list[Stretch]] = {}
    for key, start in starts.items():
        end = ends.get(key)
        if end is None:
            i = bisect.bisect_left(ordered, start)
            end = ordered[i] if i < len(ordered) else math.inf
        runs.setdefault(key[0], []).append((start, end))
    return runs


@dataclass(frozen=True)
class Doubles:
    #: jobs whose RUNNING stretches overlap in the Event history
    history: list[int]
    #: jobs whose task runs overlap in the journal
    journal: list[int]
    #: jobs with more than one RUNNING stretch (re-runs after a failure: allowed)
    rerun: list[int]
    #: task runs the journal saw beyond the job's RUNNING stretches (starts the server never heard of)
    unrecorded_starts: int
    #: RUNNING Events that repeat an earlier start of the same job (one start recorded twice)
    replayed_starts: int
    #: jobs with a start the journal saw and the history did not, and jobs with a replayed start
    unrecorded: list[int]
    replayed: list[int]


def find(steps: Mapping[int, Sequence[Step]], journal: Mapping[int, Sequence[Stretch]] | None) -> Doubles:
    history: list[int] = []
    rerun: list[int] = []
    unrecorded: list[int] = []
    replayed: list[int] = []
    unrecorded_starts = replayed_starts = 0
    for job, job_steps in steps.items():
        recorded = running_stretches(job_steps)
        stretches = merge_replays(recorded)
        if len(recorded) > len(stretches):
            replayed.append(job)
            replayed_starts += len(recorded) - len(stretches)
        if overlaps(stretches):
            history.append(job)
        if len(stretches) > 1:
            rerun.append(job)
        missing = len(journal.get(job, ())) - len(stretches) if journal is not None else 0
        if missing > 0:
            unrecorded.append(job)
            unrecorded_starts += missing
    doubled = [job for job, runs in (journal or {}).items() if overlaps(runs)]
    return Doubles(
        history=sorted(history),
        journal=sorted(doubled),
        rerun=sorted(rerun),
        unrecorded_starts=unrecorded_starts,
        replayed_starts=replayed_starts,
        unrecorded=sorted(unrecorded),
        replayed=sorted(replayed),
    )
