"""The app-launcher contract: how the ranks of one job start (Parsl's launchers idea).

A launcher turns a job's argv, its hosts and its rank layout into the argv of the
start command (``mpiexec ...``, ``srun ...``, or the argv itself). Commands are lists
of strings, never shell text. Classes register by name (``@register("mpich")``) in
``APP_LAUNCHERS``, a ``runner.registry.Registry``: a duplicate name is an error and
``get`` lists the known names when one is missing.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from runner.registry import Registry


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an app launcher needs to start one job."""

    argv: Sequence[str]
    hosts: Sequence[str]
    ranks_per_node: int = 1
    threads_per_rank: int = 1
    gpus_per_rank: int = 0
    #: the job's own variables (app + job environment, OMP_NUM_THREADS, GPU ids).
    env: Mapping[str, str] = field(default_factory=dict)
    #: ranks on each host when they differ (serial mode's extra rank 0 on the first
    #: node); None: ``ranks_per_node`` everywhere.
    rank_counts: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if self.rank_counts is not None and len(self.rank_counts) != len(self.hosts):
            raise ValueError("rank_counts needs one count per host")

    @property
    def num_nodes(self) -> int:
        return len(self.hosts)

    @property
    def num_ranks(self) -> int:
        if self.rank_counts is not None:
            return sum(self.rank_counts)
        return self.num_nodes * self.ranks_per_node

    def counts(self) -> list[int]:
        """Ranks on each host, in host order."""
        if self.rank_counts is not None:
            return list(self.rank_counts)
        return [self.ranks_per_node] * len(self.hosts)


class UnsupportedJob(ValueError):
    """The job's layout cannot be started by this launcher (e.g. 4 ranks with ``local``)."""


class AppLauncher(ABC):
    """Builds the start command of one job."""

    name: ClassVar[str]
    #: the start command when the site settings name none.
    default_executable: ClassVar[str] = ""
    #: run the start command with SIGPIPE ignored (a write to a closed pipe or socket
    #: fails with EPIPE instead of killing it); only for a start command that gives the
    #: job's processes SIGPIPE back at its default, as Hydra's proxy does.
    ignore_sigpipe: ClassVar[bool] = False

    def __init__(self, *, executable: str = "", extra_args: Sequence[str] = ()) -> None:
        self.executable = executable or self.find_default()
        self.extra_args = list(extra_args)

    @classmethod
    def find_default(cls) -> str:
        return shutil.which(cls.default_executable) or cls.default_executable

    @abstractmethod
    def command(self, spec: LaunchSpec) -> list[str]:
        """The argv that starts every rank of ``spec``."""

    def process_env(self, spec: LaunchSpec, base: Mapping[str, str]) -> dict[str, str]:
        """Environment of the start command itself: the launcher's plus the job's."""
        env = dict(base)
        env.update(spec.env)
        return env


APP_LAUNCHERS: Registry[type[AppLauncher]] = Registry("app launcher")
register = APP_LAUNCHERS.register
get = APP_LAUNCHERS.get
names = APP_LAUNCHERS.names
