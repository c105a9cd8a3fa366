"""The ``bench.json`` document: one versioned schema for every ``tolu bench`` command.

A run holds scenarios (``serial``, ``mpi``, ``api-sqlite``...), each repeated as trials.
A trial keeps its raw timings, its phases and its derived figures; the scenario's
summary gives min/median/max of every figure over the trials. Ratios to the
baselines measured in the same trial are figures too (``ratio_*``): those are the
numbers to compare across machines, and the ones ``--compare``/``--fail-on`` check.

A figure with an aim (``FigureInfo.aim``, e.g. ``>= 0.8``) gets a verdict on its
median (``Scenario.verdicts``): met, missed, or not measured; ``tolu bench ... --check``
exits non-zero unless every one is met.

The JSON Schema (``bench.schema.json``, next to this module and next to every
``bench.json``) is generated from these models. SCHEMA_VERSION: the minor number
grows with additive changes (old files still load), the major one with any other.

- 1.0: machine, parameters, scenarios, trials, baselines, figures, comparison;
- 1.1: verdicts (``Scenario.verdicts``, ``BenchResult.check``), the tolu processes of
  a trial with their roles, CPU and memory (``Trial.processes``), the baselines' CPU
  (``Baseline.cpu_s``), chaos runs (``Trial.chaos``);
- 1.2: comparisons with the published history (``--against-history``): ``Comparison.source``
  and ``location``, ``CompareRow.runs``;
- 1.3: the interpreter and how fast it runs Python here (``Machine.python_executable``,
  ``Machine.python_loop_ns``);
- 1.4: ``--gate-on``: ``CompareRow.gated`` (False: compared and shown, never regressed);
- 1.5: the file system of the jobs' directories (``Machine.file_system``,
  ``Machine.slow_inode_reuse``; the trials' ``fs_workdir_us`` is a figure like the others).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SchemaVersion = Literal["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"]
SCHEMA_VERSION: SchemaVersion = "1.5"
SCHEMA_FILE = Path(__file__).with_name("bench.schema.json")

Better = Literal["higher", "lower", "none"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Machine(Model):
    hostname: str
    cpu_model: str
    cores_logical: int
    cores_physical: int | None
    memory_bytes: int
    memory_available_bytes: int
    os: str
    kernel: str
    python: str
    python_implementation: str
    #: the interpreter the run's tolu processes ran under (links resolved).
    python_executable: str | None = None
    #: ns per step of a plain Python loop when the run started (machine.python_loop_ns):
    #: how fast that interpreter is here; tolu's CPU per job scales with it.
    python_loop_ns: float | None = None
    #: the file system of the run's work directory, where the jobs' directories are made
    #: (``harness.bench.filesystem``: ``ext4 on / (vda), no journal``)
    file_system: str | None = None
    #: whether that file system skips recently freed inodes when it makes new ones (ext4
    #: without a journal): then a run soon after a large deletion reads slower
    slow_inode_reuse: bool | None = None
    mpi: str | None
    mpiexec: str | None
    database: str
    database_version: str | None = None
    tolu_version: str
    git_commit: str | None
    #: 1, 5 and 15 minute load averages when the run started: how busy the machine was.
    load_average: list[float]


class FigureInfo(Model):
    unit: str
    better: Better
    description: str = ""
    #: the aim, when there is one: an operator and a number (``>= 0.8``, ``< 10``, ``<= 0.06``).
    aim: str | None = None


class Stat(Model):
    min: float | None
    median: float | None
    max: float | None
    values: list[float | None]


class Baseline(Model):
    """A reference measured in the same trial on the same machine."""

    name: str
    description: str
    command: list[str]
    workers: int
    jobs: int
    seconds: float
    jobs_per_s: float
    #: CPU seconds its workers spent in the timed part (their own, not the tasks'); None if unread.
    cpu_s: float | None = None


class Phase(Model):
    """A stretch of a trial; times in seconds from the trial's first submission."""

    name: str
    start_s: float
    end_s: float
    jobs: int
    seconds: float
    jobs_per_s: float | None


class Series(Model):
    """A time series for the report: ``t`` seconds from the trial start."""

    t: list[float]
    values: list[float]


class ProcessUsage(Model):
    """One tolu process of a trial (or the MPI runtime that starts tolu processes)."""

    #: which process tree it was found in: ``server``, ``launcher-0``, ...
    root: str
    pid: int
    #: runner.roles.Role value, ``runtime`` (mpiexec and its proxies) or ``other``
    role: str
    #: how the role is known: ``announced`` (its kernel name), ``command line``, ``parent``, ``children``
    source: str
    command: str
    #: CPU seconds in the run phase, and over all of its life that was seen
    cpu_s: float
    cpu_total_s: float
    peak_rss_mb: float


class ChaosEvent(Model):
    """One fault a chaos run injected: what, when (seconds from the start), and how long it was out."""

    target: str
    action: str
    at_s: float
    down_s: float
    #: the share of the jobs that had run by then
    done_fraction: float
    note: str = ""


class Trial(Model):
    index: int
    started_at: datetime
    seconds: float
    phases: list[Phase] = Field(default_factory=list)
    figures: dict[str, float | None] = Field(default_factory=dict)
    baselines: list[Baseline] = Field(default_factory=list)
    #: raw measurements that are not per job (e.g. each page request's latency in ms).
    raw: dict[str, list[float]] = Field(default_factory=dict)
    series: dict[str, Series] = Field(default_factory=dict)
    #: final state -> number of jobs, so a run that lost or failed jobs is visible.
    final_states: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    #: server requests answered during the trial, per route (``POST /sessions/{id}/acquire``).
    requests_by_route: dict[str, int] = Field(default_factory=dict)
    #: the tolu processes that were seen, with their roles, CPU and memory.
    processes: list[ProcessUsage] = Field(default_factory=list)
    #: the faults a chaos run injected, in order.
    chaos: list[ChaosEvent] = Field(default_factory=list)


Outcome = Literal["met", "missed", "unmeasured"]


class Verdict(Model):
    """A figure's median against its aim."""

    figure: str
    aim: str
    median: float | None
    outcome: Outcome


class Scenario(Model):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    figure_info: dict[str, FigureInfo] = Field(default_factory=dict)
    trials: list[Trial] = Field(default_factory=list)
    summary: dict[str, Stat] = Field(default_factory=dict)
    verdicts: list[Verdict] = Field(default_factory=list)


class Check(Model):
    """Every aim of the run at once: what ``--check`` decides on."""

    aims: int
    met: int
    #: ``scenario: figure median (aim)`` for each aim missed or not measured
    failed: list[str] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failed


class CompareRow(Model):
    scenario: str
    figure: str
    #: the earlier value: the other file's median, or the median of the history's medians
    before: float | None
    after: float | None
    change_percent: float | None
    regressed: bool
    #: with the history: how many earlier runs ``before`` is the median of
    runs: int | None = None
    #: False when ``--gate-on`` named other ratios: shown, never ``regressed``
    gated: bool = True


class Comparison(Model):
    #: ``--compare``: the earlier bench.json; ``--against-history``: where the history was read
    baseline_path: str
    fail_on_percent: float | None
    rows: list[CompareRow]
    regressed: bool
    #: e.g. scenarios whose parameters differ (then the ratios compare different things).
    notes: list[str] = Field(default_factory=list)
    #: ``file`` (--compare) or ``history`` (--against-history: published runs at ``location``)
    source: Literal["file", "history"] = "file"
    location: str | None = None


class BenchResult(Model):
    schema_version: SchemaVersion = SCHEMA_VERSION
    #: which ``tolu bench`` command: throughput | api | launcher
    command: str
    argv: list[str]
    created_at: datetime
    seconds: float
    machine: Machine
    parameters: dict[str, Any]
    scenarios: list[Scenario]
    notes: list[str] = Field(default_factory=list)
    comparison: Comparison | None = None
    check: Check | None = None
    #: per-job timestamps, relative to this file.
    csv: str | None = None
    report: str | None = None


def json_schema() -> dict[str, Any]:
    schema = BenchResult.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://tolu.invalid/bench/{SCHEMA_VERSION}/bench.schema.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def load(path: str | Path) -> BenchResult:
    """Read a ``bench.json`` (raises pydantic.ValidationError on a malformed one)."""
    return BenchResult.model_validate_json(Path(path).read_text())
