"""How one task ended, as both launcher modes note and report it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.launcher.spawners import Exit
from runner.launcher.tasks import Task


#: Not frozen, as every value made per job: a frozen dataclass's ``__init__`` sets each field
#: through ``object.__setattr__`` (2.3 µs against 0.4 for ten fields here); treat it as read-only
#: (docs/performance.md, "Values made per job, no longer frozen").
@dataclass(slots=True)
class Outcome:
    """How one task ended, as a worker reports it (picklable, no Job attached)."""

    job_id: int
    returncode: int | None
    started: float
    ended: float
    timed_out: bool = False
    stopped: bool = False
    error: str = ""
    tail: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    #: reported from an earlier session's note, not run again (see workdir.note_success).
    recovered: bool = False


def exit_outcome(ex: Exit, task: Task) -> Outcome:
    """How ``task`` ended when its process exited. The spawner that ran it has already
    noted a clean exit in the workdir (so a launcher that dies before its report does
    not run it again) and read the output tail of a failure and a function's result."""
    return Outcome(
        job_id=ex.key,
        returncode=ex.returncode,
        started=ex.started,
        ended=ex.ended,
        timed_out=ex.timed_out,
        stopped=ex.stopped,
        tail=ex.tail,
        result=ex.result,
        recovered=ex.recovered,
    )
