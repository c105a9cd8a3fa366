"""The ``local`` scheduler: the batch script runs as a detached process on this machine.

The embedded default for a laptop or a login node without a batch system. Each job
gets an id of its own (``local-<ns time>``), runs in its own session (``setsid``,
so cancelling kills its whole process group and the agent may exit meanwhile),
with a pid file ``<id>.pid`` (pid and process start time, so a recycled pid is
never mistaken for the job) and the exit-code file every batch script writes.
There is no queue: a job is running from submit until its process is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

from runner.models import BatchJob
from runner.platform.schedulers import register_scheduler
from runner.platform.schedulers.base import (
    BatchScheduler,
    CommandResult,
    SchedulerStatus,
    SubmitError,
    quote,
)
from runner.platform.settings import SchedulerSettings
from runner.states import BatchJobState

#: the id is handed to the detached script through this variable.
ID_ENV = "TOLU_LOCAL_JOB_ID"
#: ``sh -c`` program that starts the script in a new session and prints its pid; the
#: paths come as positional parameters, never inside the program text.
_DETACH = 'setsid "$0" "$1" </dev/null >"$2" 2>&1 & echo $!'


@register_scheduler("local")
class Local(BatchScheduler):
    template_file = "local.sh.tmpl"
    job_id_shell = "${" + ID_ENV + "}"
    #: states as reported by this class itself (there is no external tool).
    state_table = {"running": BatchJobState.RUNNING}
    #: one machine: two allocations would be two launchers fighting over the same cores.
    capacity_nodes = 1

    def directives(self, batch_job: BatchJob, settings: SchedulerSettings) -> list[str]:
        return [f"# local: {int(batch_job.num_nodes)} node(s), {int(batch_job.wall_time_min)} min, "
                f"mode {quote(batch_job.job_mode.value)}"]

    # Commands are not used: this scheduler works in-process (psutil, signals).
    def submit_command(self, script: Path) -> list[str]:
        return ["/bin/sh", "-c", _DETACH, "/bin/bash", str(script)]

    def parse_submit_output(self, stdout: str) -> str:
        return stdout.strip()

    def status_command(self, ids: Sequence[str]) -> list[str]:
        return []

    def parse_status_output(self, result: CommandResult, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        return {}

    def cancel_command(self, scheduler_id: str) -> list[str]:
        return []

    def pid_file(self, scheduler_id: str) -> Path:
        return self.work_dir / f"{scheduler_id}.pid"

    def submit(self, script_path: str | Path) -> str:
        script = Path(script_path).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        scheduler_id = f"local-{time.time_ns()}"
        output = self.work_dir / f"{script.stem}.{scheduler_id}.out"
        argv = [*self.submit_command(script), str(output)]
        env = {**os.environ, **(self.env or {}), ID_ENV: scheduler_id}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=script.parent,
                              stdin=subprocess.DEVNULL, timeout=self.command_timeout_sec)
        pid_text = proc.stdout.strip()
        if proc.returncode != 0 or not pid_text.isdigit():
            raise SubmitError(f"local: could not start {script}", argv=argv, returncode=proc.returncode,
                              output=proc.stdout + proc.stderr)
        pid = int(pid_text)
        try:
            started = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            started = 0.0  # already over: the exit-code file tells how it went
        self.pid_file(scheduler_id).write_text(f"{pid} {started}\n")
        return scheduler_id

    def _process(self, scheduler_id: str) -> psutil.Process | None:
        """The job's live process, or None (gone, a zombie, or a recycled pid)."""
        try:
            pid_text, started_text = self.pid_file(scheduler_id).read_text().split()
            proc = psutil.Process(int(pid_text))
            if abs(proc.create_time() - float(started_text)) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def query(self, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        statuses = {}
        for scheduler_id in ids:
            proc = self._process(scheduler_id)
            if proc is not None:
                statuses[scheduler_id] = SchedulerStatus(
                    scheduler_id, self.map_state("running"), native_state="running",
                    start_time=datetime.fromtimestamp(proc.create_time(), UTC), num_nodes=1,
                )
        return statuses

    def cancel(self, scheduler_id: str) -> None:
        proc = self._process(scheduler_id)
        if proc is None:
            return
        # The script's trap forwards TERM to the launcher and writes the exit code.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
