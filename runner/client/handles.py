"""Job handles: a created job you can wait for and ask for its result, like a future.

::

    h = client.jobs.submit(square, 7)            # a python-function app: square(7)
    h.result(timeout=60)                         # 49, or JobFailed with the traceback
    hs = client.jobs.map(square, range(100))     # 100 jobs, one request
    for done in client.jobs.as_completed(hs):    # as each one ends
        print(done.id, done.state)

A handle may be a parent of later jobs (``parents=[h]``), as HyperQueue's tasks are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.client.errors import ToluError
from runner.client.failures import UNSUCCESSFUL, Failure
from runner.html import fields_table
from runner.models import AppKind, Job
from runner.payload import loads
from runner.states import FINAL, JobState

if TYPE_CHECKING:
    from runner.client.jobs import JobManager


class JobFailed(ToluError):
    """A job handle's ``result()`` or ``wait()``: the job ended FAILED or KILLED.

    ``.reason`` is one line, ``.traceback`` the python exception's traceback (python
    apps), ``.output_path`` the job's output file on its site, ``.tail`` the last lines
    of that output as the launcher reported them, ``.job`` the job.
    """

    def __init__(self, failure: Failure, job: Job) -> None:
        self.failure = failure
        self.job = job
        self.reason = failure.reason
        self.traceback = failure.traceback
        self.output_path = failure.output_path
        self.tail = failure.tail
        message = str(failure)
        if failure.traceback:
            message += "\n" + failure.traceback.rstrip()
        super().__init__(message)


class JobHandle:
    """One job as a future: ``state``, ``done()``, ``wait()``, ``result()``."""

    def __init__(self, manager: JobManager, job: Job, *, kind: AppKind | None = None) -> None:
        self._manager = manager
        self.job = job
        self._kind = kind

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def state(self) -> JobState:
        """The state when last seen (``refresh()`` asks the server)."""
        return self.job.state

    def refresh(self) -> Job:
        self.job = self._manager.get(self.id)
        return self.job

    def done(self) -> bool:
        """Whether the job is in a final state now (asks the server)."""
        return self.refresh().state in FINAL

    def wait(self, timeout: float | None = None, *, poll_sec: float = 1.0) -> Job:
        """Block until the job ends; JobFailed if it ended FAILED or KILLED, WaitTimeout after ``timeout``."""
        (job,) = self._manager.wait([self.id], timeout=timeout, poll_sec=poll_sec, raise_on_failure=False)
        self.job = job
        if job.state in UNSUCCESSFUL:
            raise JobFailed(self._manager.explain([job])[job.id], job)
        return job

    def result(self, timeout: float | None = None, *, poll_sec: float = 1.0) -> Any:
        """What the job produced once it finished: a python-function job's return value;
        for a command the finished Job (its ``return_code``, its files in its workdir).

        Raises JobFailed (reason, traceback, output path) if the job failed or was killed,
        WaitTimeout if it is not done after ``timeout`` seconds.
        """
        job = self.wait(timeout, poll_sec=poll_sec)
        if self._app_kind() is AppKind.PYTHON:
            if "result" not in job.data:
                raise ToluError(f"job {job.id} finished but stored no result")
            return loads(job.data["result"])
        return job

    def _app_kind(self) -> AppKind:
        if self._kind is None:
            self._kind = self._manager.app_kind(self.job.app_id)
        return self._kind

    def __repr__(self) -> str:
        return f"<JobHandle job {self.id} {self.state.value}>"

    def _repr_html_(self) -> str:
        rows: list[tuple[str, Any]] = [("state", self.state.value), ("app", self.job.app_id)]
        if self.state in UNSUCCESSFUL:
            failure = self._manager.explain([self.job]).get(self.id)
            if failure is not None:
                rows += [("reason", failure.reason), ("output", failure.output_path)]
        return fields_table(f"job {self.id}", rows)
