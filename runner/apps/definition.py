"""``AppDef``: an app defined as a Python class, with optional hooks run on the site."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from runner.apps.errors import AppDefinitionError, first_error
from runner.apps.templates import merge_parameters, placeholders, render_argv
from runner.models import HOOKS, AppCreate, AppKind, Hook, Job, Resources
from runner.states import JobState


class AppDef:
    """Base class of an app defined in Python (one subclass per app).

    Class attributes say what the app is; hook methods (optional) run on the site
    when a job reaches their state. A hook reads ``self.job``, ``self.parameters``,
    ``self.workdir`` and may change ``self.data`` (saved into ``job.data``); it returns
    ``None`` for the normal next state, or a ``JobState`` to go elsewhere; an exception
    fails the job with its message.

    ::

        class Simulate(AppDef):
            name = "simulate"
            command_template = "simulate --steps {steps} --out {out}"
            parameters = {"steps": 100, "out": "result.h5"}
            resources = {"num_nodes": 2, "ranks_per_node": 4}

            def postprocess(self):
                if not (self.workdir / self.parameters["out"]).exists():
                    return JobState.FAILED
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    command_template: ClassVar[str | None] = None
    parameters: ClassVar[dict[str, Any]] = {}
    resources: ClassVar[Resources | dict[str, Any]] = {}
    environment: ClassVar[dict[str, str]] = {}
    #: jobs may pass parameters not declared here (otherwise such a job is refused).
    free_parameters: ClassVar[bool] = False
    #: where the definition was loaded from (set by ``load_apps``).
    source: ClassVar[Path | None] = None

    def __init__(self, job: Job | None = None, *, workdir: Path | None = None) -> None:
        self.job = job
        self.workdir = workdir or Path(".")
        self.data: dict[str, Any] = dict(job.data) if job is not None else {}
        job_params: Mapping[str, Any] = job.parameters if job is not None else {}
        self.job_parameters = dict(job_params)

    @property
    def params(self) -> dict[str, Any]:
        """The job's parameters merged over the app's defaults."""
        return merge_parameters(self.all_parameters(), self.job_parameters, app=self.name)

    # Hooks: defined here only so subclasses can see the names; the base versions are
    # never called (``hooks()`` lists only the ones a subclass overrides).
    def preprocess(self) -> JobState | str | None:
        return None

    def postprocess(self) -> JobState | str | None:
        return None

    def handle_error(self) -> JobState | str | None:
        return None

    def handle_timeout(self) -> JobState | str | None:
        return None

    @classmethod
    def hooks(cls) -> list[Hook]:
        """The hook methods this app overrides."""
        hooks: list[Hook] = [h for h in HOOKS if getattr(cls, h) is not getattr(AppDef, h)]  # type: ignore[misc]
        return hooks

    @classmethod
    def all_parameters(cls) -> dict[str, Any]:
        """Declared parameters plus any template placeholder not declared (as required)."""
        params = dict(cls.parameters)
        for name in placeholders(cls.command_template or ""):
            params.setdefault(name, None)
        return params

    @classmethod
    def render_argv(cls, params: Mapping[str, Any]) -> list[str]:
        if not cls.command_template:
            raise AppDefinitionError(f"app {cls.name!r} has no command_template")
        merged = merge_parameters(cls.all_parameters(), params, app=cls.name)
        return render_argv(cls.command_template, merged, app=cls.name)

    @classmethod
    def validate(cls) -> None:
        """Raise AppDefinitionError if the definition cannot be registered."""
        where = f"{cls.source}: " if cls.source else ""
        if not cls.name:
            raise AppDefinitionError(f"{where}class {cls.__name__} has no `name`")
        if not cls.command_template:
            raise AppDefinitionError(f"{where}app {cls.name!r} has no command_template")
        try:
            placeholders(cls.command_template)
            cls.to_create(0)
        except AppDefinitionError as exc:
            raise AppDefinitionError(f"{where}app {cls.name!r}: {exc}") from None
        except ValidationError as exc:
            raise AppDefinitionError(f"{where}app {cls.name!r}: {first_error(exc)}") from None

    @classmethod
    def to_create(cls, site_id: int) -> AppCreate:
        return AppCreate(
            site_id=site_id,
            name=cls.name,
            description=cls.description or (inspect.getdoc(cls) or "").split("\n\n")[0].strip(),
            kind=AppKind.SHELL,
            command_template=cls.command_template,
            parameters=cls.all_parameters(),
            default_resources=Resources.model_validate(cls.resources),
            environment=dict(cls.environment),
            hooks=cls.hooks(),
            free_parameters=cls.free_parameters,
        )
