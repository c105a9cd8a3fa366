"""The template-method base every batch scheduler builds on (after PSI/J's BatchSchedulerExecutor).

The base does the work: runs the commands, renders the batch script from the
template file next to the scheduler's module, escapes every value, resolves jobs
that left the queue, and turns unknown states into UNKNOWN with a warning. A
scheduler class only says:

* how to submit (``submit_command``, ``parse_submit_output``),
* how to ask for the status of many jobs in ONE call (``status_command``,
  ``parse_status_output``) and how its states map (``state_table``),
* how to cancel (``cancel_command``),
* optionally how to find backfill windows (``backfill_command``, ``parse_backfill_output``)
  and how to ask the scheduler's history about jobs that left the queue (``history``),
* which directives go at the top of the script: ``directive_prefix``, ``header`` (the flag
  for each field, in order), ``flag_join``, ``option_flag`` and ``wall_time``; the base
  writes the lines (``directives``), a scheduler overrides a hook only where it differs.

A job that vanished from the queue is never left "running": ``history`` (e.g. Slurm's
``sacct -c``) is asked first, then the exit-code file the batch script writes
(``<work_dir>/<scheduler id>.ec``); with neither, the job is FAILED with that reason.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from runner.models import BatchJob
from runner.platform.settings import SchedulerSettings
from runner.states import BatchJobState

log = logging.getLogger("tolu.scheduler")

#: how many characters of a failed command's output an error carries.
OUTPUT_TAIL = 2000


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class SchedulerStatus:
    """What the scheduler says about one batch job."""

    scheduler_id: str
    state: BatchJobState
    #: the scheduler's own word for the state ("" when the job left the queue).
    native_state: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    #: why it is in this state (scheduler reason, how a vanished job was resolved).
    reason: str = ""
    #: nodes the job holds or asks for, when the scheduler says.
    num_nodes: int | None = None

    def info(self) -> dict[str, Any]:
        """The ``status_info`` the scheduler service stores on the BatchJob."""
        info: dict[str, Any] = {"native_state": self.native_state}
        if self.reason:
            info["reason"] = self.reason
        if self.exit_code is not None:
            info["exit_code"] = self.exit_code
        return info


@dataclass(frozen=True)
class BackfillWindow:
    """Nodes the scheduler could start a job on now, for at most ``wall_time_min`` (None: no limit)."""

    num_nodes: int
    wall_time_min: float | None = None
    queue: str = ""


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def tail(self) -> str:
        text = (self.stdout + "\n" + self.stderr).strip()
        return text[-OUTPUT_TAIL:]


# ---------------------------------------------------------------- errors


class SchedulerError(RuntimeError):
    """A scheduler command failed; carries the command, its return code and output tail."""

    def __init__(self, message: str, *, argv: Sequence[str] = (), returncode: int | None = None,
                 output: str = "") -> None:
        detail = message
        if argv:
            detail += f" [command: {shlex.join(argv)}"
            if returncode is not None:
                detail += f", exit {returncode}"
            detail += "]"
        if output:
            detail += f"\n{output[-OUTPUT_TAIL:]}"
        super().__init__(detail)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.output = output


class SubmitError(SchedulerError):
    """The scheduler refused the batch script (fatal for that batch job: submit_failed)."""


class SchedulerUnavailable(SchedulerError):
    """The scheduler did not answer (timeout, controller down, command missing): try again later."""


class UnsafeValue(ValueError):
    """A value that cannot be put into a batch script safely (newline, NUL, bad option name)."""


# ---------------------------------------------------------------- rendering

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def quote(value: object) -> str:
    """A shell-safe word for ``value``; refuses what no quoting makes a single safe line."""
    text = str(value)
    if any(c in text for c in "\n\r\0"):
        raise UnsafeValue(f"value {text!r} contains a newline or NUL; refusing to put it in a batch script")
    return shlex.quote(text)


def option_key(key: str) -> str:
    if not _OPTION_KEY.match(key):
        raise UnsafeValue(f"scheduler option name {key!r} must match {_OPTION_KEY.pattern}")
    return key


def render(template: str, context: Mapping[str, str]) -> str:
    """Fill ``{{name}}`` placeholders; an unknown name is an error, never left in the script."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in context:
            raise KeyError(f"batch script template uses {{{{{name}}}}}, which the scheduler does not provide")
        return context[name]

    return _PLACEHOLDER.sub(fill, template)


def script_options(batch_job: BatchJob, settings: SchedulerSettings) -> dict[str, str]:
    """Site-wide options overridden by the batch job's; keys starting with ``_`` are tolu metadata."""
    merged = {**settings.options, **batch_job.options}
    return {option_key(k): v for k, v in merged.items() if not k.startswith("_")}


def json_object(text: str, logger: logging.Logger, what: str, fallback: str) -> dict[str, Any] | None:
    """``text`` read as JSON; None, with a warning "<what> not readable (...); <fallback>", if it is not."""
    try:
        data: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        logger.warning("%s not readable (%s); %s", what, exc, fallback)
        return None
    return data


def wall_time_hms(minutes: float) -> str:
    total = max(1, round(minutes * 60))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


# ---------------------------------------------------------------- the base


class BatchScheduler(ABC):
    """A facility batch scheduler: submit, status of many in one call, cancel, backfill windows.

    Constructing one does nothing but remember its arguments (no commands run):
    ``work_dir`` holds rendered scripts, their output and the exit-code files.
    """

    #: registry name, set by ``@register_scheduler``.
    name: ClassVar[str] = ""
    #: file next to the scheduler's module holding the batch script template.
    template_file: ClassVar[str] = ""
    #: shell expression that expands to this job's scheduler id inside the batch script.
    job_id_shell: ClassVar[str] = ""
    #: the scheduler's state words -> BatchJobState; anything else is UNKNOWN with a warning.
    state_table: ClassVar[Mapping[str, BatchJobState]] = {}
    #: most nodes this scheduler can ever give at once (None: unknown, a facility's business).
    capacity_nodes: ClassVar[int | None] = None
    #: directive keyword starting each header line (``#SBATCH``).
    directive_prefix: ClassVar[str] = ""
    #: how a flag joins its value: "=" (``--time=01:00:00``) or " " (``-W 60``); a flag that
    #: already ends in "=" (``-l select=``) takes its value directly.
    flag_join: ClassVar[str] = " "
    #: the header lines in order as (field, flag); fields: job_name, nodes, wall_time, output,
    #: project, queue (project and queue only when set); field "" writes the flag alone.
    header: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: what goes before a site/batch-job option's name ("--" -> ``--mem=4G``).
    option_flag: ClassVar[str] = "--"
    #: the scheduler's output file under ``work_dir`` (``{id}``: the batch job id).
    output_name: ClassVar[str] = "batchjob-{id}.out"

    def __init__(self, work_dir: str | Path, *, command_timeout_sec: float = 60.0,
                 env: Mapping[str, str] | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.command_timeout_sec = command_timeout_sec
        self.env = dict(env) if env is not None else None
        self._warned_states: set[str] = set()

    # ------------------------------------------------------------ what a scheduler says

    @abstractmethod
    def submit_command(self, script: Path) -> list[str]:
        """The argv that submits ``script``."""

    def submit_input(self, script: Path) -> str | None:
        """Text fed to the submit command's stdin (LSF's ``bsub < script``); default none."""
        return None

    @abstractmethod
    def parse_submit_output(self, stdout: str) -> str:
        """The scheduler id from the submit command's output; raise ValueError if absent."""

    @abstractmethod
    def status_command(self, ids: Sequence[str]) -> list[str]:
        """ONE argv asking about all of ``ids``."""

    @abstractmethod
    def parse_status_output(self, result: CommandResult, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """Statuses of the jobs the output mentions (jobs absent from it are resolved by the base)."""

    @abstractmethod
    def cancel_command(self, scheduler_id: str) -> list[str]:
        """The argv that cancels one job."""

    def directives(self, batch_job: BatchJob, settings: SchedulerSettings) -> list[str]:
        """Header lines for the script (``#SBATCH ...``), every value through ``quote``."""
        values = {
            "job_name": f"tolu-{batch_job.id}",
            "nodes": str(int(batch_job.num_nodes)),
            "wall_time": self.wall_time(batch_job.wall_time_min),
            "output": str(self.work_dir / self.output_name.format(id=batch_job.id)),
            "project": batch_job.project or settings.default_project,
            "queue": batch_job.queue or settings.default_queue,
        }
        lines = []
        for field, flag in self.header:
            if not field:
                lines.append(f"{self.directive_prefix} {flag}")
            elif values[field]:
                lines.append(self.directive(flag, values[field]))
        for key, value in script_options(batch_job, settings).items():
            lines.append(self.option_directive(key, value))
        return lines

    def directive(self, flag: str, value: str) -> str:
        """One header line: ``#SBATCH --time=01:00:00``, ``#BSUB -W 60``."""
        join = "" if flag.endswith("=") else self.flag_join
        return f"{self.directive_prefix} {flag}{join}{quote(value)}"

    def option_directive(self, key: str, value: str) -> str:
        """A site/batch-job option: ``--key=value``, or the bare flag when the value is empty."""
        flag = f"{self.option_flag}{option_key(key)}"
        return self.directive(flag, value) if value else f"{self.directive_prefix} {flag}"

    def wall_time(self, minutes: float) -> str:
        """How the wall time is written (default ``hh:mm:ss``)."""
        return wall_time_hms(minutes)

    def backfill_command(self) -> list[str] | None:
        """The argv that lists backfill windows; None: this scheduler offers none."""
        return None

    def parse_backfill_output(self, stdout: str) -> list[BackfillWindow]:
        return []

    def history(self, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """Final statuses of jobs that left the queue, from the scheduler's records; default none."""
        return {}

    def status_ok(self, result: CommandResult) -> bool:
        """Whether the status command's output can be parsed (default: exit code 0)."""
        return result.returncode == 0

    # ------------------------------------------------------------ the work (template methods)

    def render_script(self, batch_job: BatchJob, launcher_argv: Sequence[str],
                      settings: SchedulerSettings) -> str:
        """The batch script for ``batch_job``: directives, prelude, the launcher, its exit code."""
        context = {
            "scheduler": self.name,
            "batch_job_id": str(batch_job.id),
            "directives": "\n".join(self.directives(batch_job, settings)),
            # The prelude is the site owner's own shell code (module loads...), kept verbatim.
            "prelude": "\n".join(settings.prelude),
            "launcher": shlex.join(str(a) for a in launcher_argv),
            "exit_code_file": f'{quote(str(self.work_dir))}/"{self.job_id_shell}.ec"',
            "work_dir": quote(str(self.work_dir)),
        }
        for arg in launcher_argv:
            quote(arg)  # refuses newlines in launcher arguments too
        script_options(batch_job, settings)  # bad option names fail for every scheduler alike
        return render(self.template_path().read_text(), context)

    @classmethod
    def template_path(cls) -> Path:
        import sys

        module = sys.modules[cls.__module__]
        return Path(module.__file__ or "").parent / cls.template_file

    def write_script(self, batch_job: BatchJob, launcher_argv: Sequence[str],
                     settings: SchedulerSettings) -> Path:
        """Render and write ``<work_dir>/batchjob-<id>.sh`` (mode 0755)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"batchjob-{batch_job.id}.sh"
        path.write_text(self.render_script(batch_job, launcher_argv, settings))
        path.chmod(0o755)
        return path

    def submit(self, script_path: str | Path) -> str:
        """Submit ``script_path``; the scheduler's id for it. SubmitError when refused."""
        script = Path(script_path).resolve()
        argv = self.submit_command(script)
        result = self.run(argv, stdin=self.submit_input(script), cwd=script.parent)
        if result.returncode != 0:
            raise SubmitError(f"{self.name}: submit of {script} refused", argv=argv,
                              returncode=result.returncode, output=result.tail())
        try:
            scheduler_id = self.parse_submit_output(result.stdout)
        except ValueError as exc:
            raise SubmitError(f"{self.name}: no job id in the submit output ({exc})", argv=argv,
                              returncode=result.returncode, output=result.tail()) from None
        log.info("%s: submitted %s as %s", self.name, script.name, scheduler_id)
        return scheduler_id

    def query(self, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """The ONE status call for ``ids``; jobs not in the answer are left out."""
        argv = self.status_command(ids)
        result = self.run(argv)
        if not self.status_ok(result):
            raise SchedulerUnavailable(f"{self.name}: status query failed", argv=argv,
                                       returncode=result.returncode, output=result.tail())
        return self.parse_status_output(result, ids)

    def status(self, ids: Iterable[str]) -> dict[str, SchedulerStatus]:
        """Status of every id: from the queue, else resolved (history, exit-code file, FAILED)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        found = {k: self.with_exit_code(v) for k, v in self.query(wanted).items() if k in wanted}
        missing = [i for i in wanted if i not in found]
        if missing:
            found.update(self.resolve_vanished(missing))
        return found

    def with_exit_code(self, status: SchedulerStatus) -> SchedulerStatus:
        """A final status the scheduler gave without an exit code, completed from the exit-code file."""
        if status.exit_code is not None or status.state not in (BatchJobState.FINISHED, BatchJobState.FAILED):
            return status
        try:
            code = int(self.exit_code_file(status.scheduler_id).read_text().strip())
            return replace(status, exit_code=code)
        except (OSError, ValueError):
            return status

    def resolve_vanished(self, ids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """Jobs that left the queue: the scheduler's history, then the exit-code file, else FAILED."""
        resolved = {k: v for k, v in self.history(ids).items() if k in ids}
        for scheduler_id in ids:
            if scheduler_id in resolved:
                continue
            resolved[scheduler_id] = self.from_exit_code_file(scheduler_id)
        return resolved

    def exit_code_file(self, scheduler_id: str) -> Path:
        return self.work_dir / f"{scheduler_id}.ec"

    def from_exit_code_file(self, scheduler_id: str) -> SchedulerStatus:
        path = self.exit_code_file(scheduler_id)
        try:
            text = path.read_text().strip()
            end = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            return SchedulerStatus(
                scheduler_id, BatchJobState.FAILED,
                reason="left the queue without an exit code (killed, or never started)",
            )
        try:
            code = int(text)
        except ValueError:
            return SchedulerStatus(scheduler_id, BatchJobState.FAILED, end_time=end,
                                   reason=f"unreadable exit code {text!r} in {path}")
        state = BatchJobState.FINISHED if code == 0 else BatchJobState.FAILED
        return SchedulerStatus(scheduler_id, state, end_time=end, exit_code=code,
                               reason=f"left the queue; batch script exit code {code}")

    def cancel(self, scheduler_id: str) -> None:
        """Ask the scheduler to end the job; a job that is already gone is not an error."""
        argv = self.cancel_command(scheduler_id)
        result = self.run(argv)
        if result.returncode != 0:
            log.warning("%s: cancel of %s answered exit %s: %s", self.name, scheduler_id,
                        result.returncode, result.tail()[-300:])

    def backfill_windows(self) -> list[BackfillWindow]:
        """Where a job could start now; [] when the scheduler offers no such view."""
        argv = self.backfill_command()
        if argv is None:
            return []
        result = self.run(argv)
        if result.returncode != 0:
            raise SchedulerUnavailable(f"{self.name}: backfill query failed", argv=argv,
                                       returncode=result.returncode, output=result.tail())
        return self.parse_backfill_output(result.stdout)

    def map_state(self, native: str) -> BatchJobState:
        """The table's state for ``native``; UNKNOWN with one warning per unknown word."""
        state = self.state_table.get(native)
        if state is not None:
            return state
        if native not in self._warned_states:
            self._warned_states.add(native)
            log.warning("%s: unknown scheduler state %r -> %s", self.name, native, BatchJobState.UNKNOWN)
        return BatchJobState.UNKNOWN

    def run(self, argv: Sequence[str], *, stdin: str | None = None, cwd: Path | None = None) -> CommandResult:
        """Run a scheduler command (list argv, no shell); transient failures: SchedulerUnavailable."""
        env = None if self.env is None else {**os.environ, **self.env}
        try:
            proc = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True,
                timeout=self.command_timeout_sec, env=env, cwd=cwd,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise SchedulerUnavailable(f"{self.name}: command {argv[0]!r} not found on PATH",
                                       argv=argv) from None
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            raise SchedulerUnavailable(
                f"{self.name}: no answer within {self.command_timeout_sec:.0f} s", argv=argv,
                output=out.decode(errors="replace") if isinstance(out, bytes) else out,
            ) from None
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

