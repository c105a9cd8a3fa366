"""The job and batch-job life cycles: the one place that says what may follow what.

The server refuses any transition not listed here (HTTP 409), and every accepted
transition is recorded as an Event. See docs/lifecycle.md.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    CREATED = "CREATED"
    AWAITING_PARENTS = "AWAITING_PARENTS"
    READY = "READY"
    STAGED_IN = "STAGED_IN"
    PREPROCESSED = "PREPROCESSED"
    RUNNING = "RUNNING"
    RUN_DONE = "RUN_DONE"
    RUN_ERROR = "RUN_ERROR"
    RUN_TIMEOUT = "RUN_TIMEOUT"
    RESTART_READY = "RESTART_READY"
    POSTPROCESSED = "POSTPROCESSED"
    STAGED_OUT = "STAGED_OUT"
    JOB_FINISHED = "JOB_FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    def __str__(self) -> str:
        return self.value


S = JobState

# Every state may be KILLED by its owner except the final ones; listed once here
# instead of in every row.
_KILLABLE = frozenset(s for s in S if s not in (S.JOB_FINISHED, S.FAILED, S.KILLED))

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.CREATED: frozenset({S.AWAITING_PARENTS, S.READY, S.STAGED_IN, S.FAILED}),
    S.AWAITING_PARENTS: frozenset({S.READY, S.STAGED_IN, S.FAILED}),
    S.READY: frozenset({S.STAGED_IN, S.FAILED}),
    S.STAGED_IN: frozenset({S.PREPROCESSED, S.FAILED}),
    S.PREPROCESSED: frozenset({S.RUNNING, S.FAILED}),
    S.RUNNING: frozenset({S.RUN_DONE, S.RUN_ERROR, S.RUN_TIMEOUT}),
    S.RUN_DONE: frozenset({S.POSTPROCESSED, S.FAILED}),
    S.RUN_ERROR: frozenset({S.RESTART_READY, S.FAILED}),
    S.RUN_TIMEOUT: frozenset({S.RESTART_READY, S.FAILED}),
    S.RESTART_READY: frozenset({S.RUNNING, S.FAILED}),
    S.POSTPROCESSED: frozenset({S.STAGED_OUT, S.FAILED}),
    S.STAGED_OUT: frozenset({S.JOB_FINISHED, S.FAILED}),
    S.JOB_FINISHED: frozenset(),
    # A user may give a failed or killed job another chance.
    S.FAILED: frozenset({S.RESTART_READY}),
    S.KILLED: frozenset({S.RESTART_READY}),
}
TRANSITIONS = {
    state: (nxt | {S.KILLED}) if state in _KILLABLE else nxt for state, nxt in TRANSITIONS.items()
}

#: States a launcher may acquire a job in.
RUNNABLE: frozenset[JobState] = frozenset({S.PREPROCESSED, S.RESTART_READY})
#: States a job never leaves on its own.
FINAL: frozenset[JobState] = frozenset({S.JOB_FINISHED, S.FAILED, S.KILLED})
#: How a run ends, as a launcher reports it (the states RUNNING leaves for on its own).
RUN_OUTCOMES: frozenset[JobState] = frozenset({S.RUN_DONE, S.RUN_ERROR, S.RUN_TIMEOUT})
#: States in which the job's process exists (or existed) under a launcher session.
ACTIVE: frozenset[JobState] = frozenset({S.RUNNING})
#: States that still count as "work to do" for the queue maintainer and autoscaler.
BACKLOG: frozenset[JobState] = frozenset(
    {S.CREATED, S.AWAITING_PARENTS, S.READY, S.STAGED_IN, S.PREPROCESSED, S.RESTART_READY}
)


def allowed(current: JobState, target: JobState) -> bool:
    """True when the life cycle lets a job go from ``current`` to ``target``."""
    return target in TRANSITIONS[current]


class TransitionError(ValueError):
    """A requested job transition that the life cycle does not allow."""

    def __init__(self, job_id: int | None, current: JobState, target: JobState) -> None:
        self.job_id = job_id
        self.current = current
        self.target = target
        allowed_next = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none"
        super().__init__(
            f"job {job_id}: cannot go from {current.value} to {target.value} "
            f"(allowed from {current.value}: {allowed_next})"
        )


def check(job_id: int | None, current: JobState, target: JobState) -> None:
    """Raise TransitionError unless ``current -> target`` is in the table."""
    if not allowed(current, target):
        raise TransitionError(job_id, current, target)


class BatchJobState(StrEnum):
    """A BatchJob as the site agent sees it in the facility scheduler."""

    PENDING_SUBMISSION = "pending_submission"
    SUBMIT_FAILED = "submit_failed"
    QUEUED = "queued"
    RUNNING = "running"
    PENDING_DELETION = "pending_deletion"
    FINISHED = "finished"
    FAILED = "failed"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


B = BatchJobState
BATCH_FINAL: frozenset[BatchJobState] = frozenset({B.SUBMIT_FAILED, B.FINISHED, B.FAILED})
BATCH_TRANSITIONS: dict[BatchJobState, frozenset[BatchJobState]] = {
    B.PENDING_SUBMISSION: frozenset({B.QUEUED, B.RUNNING, B.SUBMIT_FAILED, B.PENDING_DELETION, B.FINISHED}),
    B.QUEUED: frozenset({B.RUNNING, B.FINISHED, B.FAILED, B.PENDING_DELETION, B.UNKNOWN}),
    B.RUNNING: frozenset({B.FINISHED, B.FAILED, B.PENDING_DELETION, B.UNKNOWN}),
    B.PENDING_DELETION: frozenset({B.FINISHED, B.FAILED}),
    B.UNKNOWN: frozenset({B.QUEUED, B.RUNNING, B.FINISHED, B.FAILED, B.PENDING_DELETION}),
    B.SUBMIT_FAILED: frozenset(),
    B.FINISHED: frozenset(),
    B.FAILED: frozenset(),
}
