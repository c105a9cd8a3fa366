"""From a server Job and its App to what a launcher starts: argv, environment, workdir.

Shell apps: ``runner.apps.job_argv`` fills the command template (no shell).
Python-function apps: the function and arguments are written into the job's
workdir and run by ``python -P -m runner.launcher.pyrunner``, which leaves the result
(or the exception with its traceback) in ``.tolu/result.json`` for the launcher to
put into the job's ``data``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.apps import AppDefinitionError, job_argv
from runner.interpreter import module_command
from runner.launcher.workdir import META_DIR
from runner.models import App, AppKind, Job


class TaskError(ValueError):
    """A job that cannot be turned into a command (missing parameter, broken app)."""


@dataclass(slots=True)
class Task:
    """One job, ready to start; small and picklable (serial mode sends it over MPI).

    Not frozen: a frozen dataclass sets each of these fields through
    ``object.__setattr__``, and the launcher makes one per job."""

    job_id: int
    argv: list[str]
    workdir: str
    env: dict[str, str] = field(default_factory=dict)
    wall_time_sec: float | None = None
    python: bool = False
    num_nodes: int = 1
    ranks_per_node: int = 1
    threads_per_rank: int = 1
    gpus_per_rank: int = 0
    node_packing_count: int = 1
    #: the job's attempt when acquired (Job.attempt), and the session running it.
    attempt: int = 0
    session_id: int = 0


def job_env(app: App, job: Job) -> dict[str, str]:
    """The job's own variables: the app's, the job's over them, and OMP_NUM_THREADS."""
    env = {"OMP_NUM_THREADS": str(job.threads_per_rank)}
    env.update(app.environment)
    env.update(job.environment)
    env["TOLU_JOB_ID"] = str(job.id)
    return env


class TaskFactory:
    """Turns acquired jobs into Tasks; knows the site's data directory and the apps."""

    def __init__(self, data_dir: Path, apps: Mapping[int, App]) -> None:
        self.data_dir = data_dir
        self._data = str(data_dir.resolve())
        self.apps = dict(apps)

    def workdir(self, job: Job) -> Path:
        return Path(self._workdir(job))

    def _workdir(self, job: Job) -> str:
        # Lexical check, no resolve(): resolving costs a dozen syscalls per job; and a
        # string, not a Path: this runs once per acquired job.
        rel = os.path.normpath(job.workdir)
        if os.path.isabs(rel) or rel == ".." or rel.startswith("../"):
            raise TaskError(f"workdir {job.workdir!r} leaves the site's data directory")
        return f"{self._data}/{rel}"

    def make(self, job: Job, session_id: int = 0) -> Task:
        app = self.apps.get(job.app_id)
        if app is None:
            raise TaskError(f"app {job.app_id} of job {job.id} is unknown to this launcher")
        workdir = self._workdir(job)
        if app.kind is AppKind.PYTHON:
            if not app.serialized_function:
                raise TaskError(f"python app {app.name!r} has no serialized_function")
            write_python_payload(Path(workdir), app, job)
            argv = [*module_command("runner.launcher.pyrunner"), f"{workdir}/{META_DIR}"]
        else:
            try:
                argv = job_argv(app, job)
            except AppDefinitionError as exc:
                raise TaskError(str(exc)) from None
        return Task(
            job_id=job.id,
            argv=argv,
            workdir=workdir,
            env=job_env(app, job),
            wall_time_sec=job.wall_time_min * 60 if job.wall_time_min > 0 else None,
            python=app.kind is AppKind.PYTHON,
            num_nodes=job.num_nodes,
            ranks_per_node=job.ranks_per_node,
            threads_per_rank=job.threads_per_rank,
            gpus_per_rank=job.gpus_per_rank,
            node_packing_count=job.node_packing_count,
            attempt=job.attempt,
            session_id=session_id,
        )


def write_python_payload(workdir: Path, app: App, job: Job) -> None:
    meta = workdir / META_DIR
    meta.mkdir(parents=True, exist_ok=True)
    payload = {
        "function": app.serialized_function,
        "args": job.serialized_args,
        "parameters": {**{k: v for k, v in app.parameters.items() if v is not None}, **job.parameters},
    }
    (meta / "call.json").write_text(json.dumps(payload))
    # A stale result.json of an earlier attempt is removed by the spawner just before the
    # start (it may yet be the result of a lost success that is reported, not rerun).
