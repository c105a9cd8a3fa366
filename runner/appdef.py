"""App definitions: what a site's ``apps/`` folder holds, and how a job's argv is made.

Three ways to define an app (see docs/apps.md):

- a YAML file: ``name``, ``description``, ``command_template``, ``parameters`` (name ->
  default, ``null`` = required), ``resources``, ``environment``; one app per file, or a
  list of them;
- a Python file with a subclass of :class:`AppDef` (class attributes as in YAML, plus
  optional hook methods ``preprocess``/``postprocess``/``handle_error``/``handle_timeout``);
- a Python function decorated with :func:`python_app`, shipped to the launcher
  cloudpickled and base64-encoded.

``render_argv`` turns a template into an argument list without a shell: the template
is split with ``shlex`` first and the ``{name}`` placeholders are filled inside each
token afterwards, so a parameter value can never add arguments or shell syntax.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import inspect
import re
import shlex
import string
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import cloudpickle
import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from runner.models import HOOKS, App, AppCreate, AppKind, Hook, Job, Resources
from runner.states import JobState


class AppDefinitionError(ValueError):
    """An app definition that cannot be used; the message names the file (or app) and the problem."""


class MissingParameter(AppDefinitionError):
    """A job lacks a parameter its app requires."""


# ---------------------------------------------------------------- templates

_FORMATTER = string.Formatter()


def placeholders(template: str) -> list[str]:
    """The parameter names a template uses, in order of first use."""
    names: list[str] = []
    for token in _split(template):
        for name in _token_fields(token, template):
            if name not in names:
                names.append(name)
    return names


def _split(template: str) -> list[str]:
    try:
        return shlex.split(template)
    except ValueError as exc:
        raise AppDefinitionError(f"command template {template!r}: {exc}") from None


def _token_fields(token: str, template: str) -> list[str]:
    try:
        parsed = list(_FORMATTER.parse(token))
    except ValueError as exc:
        raise AppDefinitionError(
            f"command template {template!r}: {exc} (write {{{{ and }}}} for braces)"
        ) from None
    names = []
    for _literal, name, _spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise AppDefinitionError(
                f"command template {template!r}: placeholder {{{name}}} must be a plain parameter name"
            )
        if conversion:
            raise AppDefinitionError(
                f"command template {template!r}: conversions like !{conversion} are not allowed"
            )
        names.append(name)
    return names


def merge_parameters(
    defaults: Mapping[str, Any], given: Mapping[str, Any], *, app: str = ""
) -> dict[str, Any]:
    """The app's defaults overlaid with the job's values; a required one missing is an error."""
    merged = {**defaults, **given}
    missing = sorted(k for k, v in merged.items() if v is None and k in defaults and k not in given)
    if missing:
        who = f"app {app!r}: " if app else ""
        raise MissingParameter(
            f"{who}missing required parameter{'s' if len(missing) > 1 else ''} " + ", ".join(missing)
        )
    return merged


def render_argv(template: str, params: Mapping[str, Any], *, app: str = "") -> list[str]:
    """The argument list for one job: ``shlex.split(template)``, then ``{name}`` filled per token.

    Values are inserted with ``format`` into the token that holds the placeholder, so
    ``len(render_argv(t, p)) == len(shlex.split(t))`` whatever the values are: a value
    with spaces, quotes, ``;`` or ``$(...)`` stays one literal argument (no shell runs).
    ``{name:spec}`` applies a format spec (``{i:04d}``); ``{{``/``}}`` are literal braces.
    """
    argv: list[str] = []
    for token in _split(template):
        names = _token_fields(token, template)
        if not names:
            argv.append(token.replace("{{", "{").replace("}}", "}"))
            continue
        missing = [n for n in names if n not in params or params[n] is None]
        if missing:
            who = f"app {app!r}: " if app else ""
            raise MissingParameter(f"{who}missing required parameter {missing[0]!r} (template {template!r})")
        try:
            argv.append(token.format_map({n: params[n] for n in names}))
        except (ValueError, TypeError) as exc:
            raise AppDefinitionError(f"command template {template!r}: {exc}") from None
    return argv


def job_argv(app: App, job: Job) -> list[str]:
    """The argv of a shell app's job, from the server's App and Job (for the launcher)."""
    if not app.command_template:
        raise AppDefinitionError(f"app {app.name!r} is not a shell app (no command_template)")
    params = merge_parameters(app.parameters, job.parameters, app=app.name)
    return render_argv(app.command_template, params, app=app.name)


# ---------------------------------------------------------------- python-function apps


def _dumps(obj: Any) -> str:
    return base64.b64encode(cloudpickle.dumps(obj)).decode("ascii")


def serialize_function(fn: Callable[..., Any]) -> str:
    """The function, cloudpickled (by value) and base64-encoded, for ``AppCreate.serialized_function``."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None or module.__name__ in ("__main__", "builtins"):
        return _dumps(fn)
    # Pickle the code itself, so the launcher needs no copy of the defining module.
    if module.__name__ in cloudpickle.list_registry_pickle_by_value():
        return _dumps(fn)
    cloudpickle.register_pickle_by_value(module)
    try:
        return _dumps(fn)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def serialize_args(args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None) -> str:
    """``(args, kwargs)`` cloudpickled and base64-encoded, for ``JobCreate.serialized_args``."""
    return _dumps((tuple(args), dict(kwargs or {})))


def deserialize(payload: str) -> Any:
    """The object serialized by :func:`serialize_function`, :func:`serialize_args` or a result."""
    return cloudpickle.loads(base64.b64decode(payload))


def call_python(
    serialized_function: str, serialized_args: str | None = None, parameters: Mapping[str, Any] | None = None
) -> Any:
    """Run a python-function job: ``fn(*args, **parameters, **kwargs)``."""
    fn = deserialize(serialized_function)
    args, kwargs = deserialize(serialized_args) if serialized_args else ((), {})
    return fn(*args, **{**(parameters or {}), **kwargs})


class PythonJobError(RuntimeError):
    """A python-function job raised; the message carries its type, message and traceback tail."""


def job_result(job: Job) -> Any:
    """The return value of a finished python-function job.

    Reads what the launcher stores in ``job.data``: ``result`` (cloudpickled, base64)
    or ``exception`` (``type``, ``message``, ``traceback``), which raises PythonJobError.
    """
    if "exception" in job.data:
        exc = job.data["exception"] or {}
        tail = str(exc.get("traceback", "")).strip().splitlines()[-3:]
        raise PythonJobError(
            f"job {job.id}: {exc.get('type', 'Exception')}: {exc.get('message', '')}"
            + (" | " + " | ".join(tail) if tail else "")
        )
    if "result" not in job.data:
        raise PythonJobError(f"job {job.id} ({job.state}) has no result yet")
    return deserialize(job.data["result"])


# ---------------------------------------------------------------- definitions


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
            raise AppDefinitionError(f"{where}app {cls.name!r}: {_first_error(exc)}") from None

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
        )


class PythonApp:
    """A Python function registered as an app by :func:`python_app`.

    Calling it calls the function locally; ``to_create`` ships it to the server;
    ``job(app_id, *args, **kwargs)`` makes a ``JobCreate`` with the arguments serialized.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        resources: Resources | Mapping[str, Any] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = (
            description if description is not None else (inspect.getdoc(fn) or "").split("\n\n")[0]
        )
        self.parameters = dict(parameters or {})
        self.resources = (
            resources if isinstance(resources, Resources) else Resources.model_validate(resources or {})
        )
        self.environment = dict(environment or {})
        self.source: Path | None = None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<python app {self.name!r} ({self.fn.__module__}.{self.fn.__qualname__})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def hooks(self) -> list[Hook]:
        return []

    def validate(self) -> None:
        try:
            self.to_create(0)
        except ValidationError as exc:
            where = f"{self.source}: " if self.source else ""
            raise AppDefinitionError(f"{where}python app {self.name!r}: {_first_error(exc)}") from None

    def to_create(self, site_id: int) -> AppCreate:
        return AppCreate(
            site_id=site_id,
            name=self.name,
            description=self.description,
            kind=AppKind.PYTHON,
            serialized_function=serialize_function(self.fn),
            parameters=self.parameters,
            default_resources=self.resources,
            environment=self.environment,
        )

    def job(self, app_id: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A job body (for ``client.jobs.bulk_create``) that calls ``fn(*args, **kwargs)``."""
        return {"app_id": app_id, "serialized_args": serialize_args(args, kwargs)}


def python_app(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    resources: Resources | Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
) -> Any:
    """Make a Python function an app: ``@python_app`` or ``@python_app(resources={...})``."""

    def wrap(f: Callable[..., Any]) -> PythonApp:
        return PythonApp(
            f,
            name=name,
            description=description,
            parameters=parameters,
            resources=resources,
            environment=environment,
        )

    return wrap(fn) if fn is not None else wrap


# ---------------------------------------------------------------- YAML apps


class _YamlApp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    command_template: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(
        default_factory=Resources, validation_alias=AliasChoices("resources", "default_resources")
    )
    environment: dict[str, str] = Field(default_factory=dict)


def _first_error(exc: ValidationError) -> str:
    errs = exc.errors()
    first = errs[0]
    loc = ".".join(str(p) for p in first["loc"])
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc}: {first['msg']}{more}" if loc else f"{first['msg']}{more}"


def _yaml_apps(path: Path) -> list[type[AppDef]]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AppDefinitionError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        raise AppDefinitionError(f"{path}: empty file")
    if isinstance(raw, dict) and set(raw) == {"apps"}:
        raw = raw["apps"]
    items = raw if isinstance(raw, list) else [raw]
    out: list[type[AppDef]] = []
    for i, item in enumerate(items):
        where = f"{path}" + (f" (app {i + 1})" if len(items) > 1 else "")
        if not isinstance(item, dict):
            raise AppDefinitionError(f"{where}: expected a mapping with name and command_template")
        try:
            spec = _YamlApp.model_validate(item)
        except ValidationError as exc:
            raise AppDefinitionError(f"{where}: {_first_error(exc)}") from None
        cls = type(
            f"YamlApp_{spec.name}",
            (AppDef,),
            {
                "name": spec.name,
                "description": spec.description,
                "command_template": spec.command_template,
                "parameters": spec.parameters,
                "resources": spec.resources,
                "environment": spec.environment,
                "source": path,
            },
        )
        out.append(cls)
    return out


def _python_apps(path: Path) -> list[type[AppDef] | PythonApp]:
    # A stable name per file: the same definition pickles to the same bytes, so a
    # sync can tell an unchanged python app from a changed one.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"tolu_apps_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AppDefinitionError(f"{path}: cannot be imported")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        tb = traceback.extract_tb(exc.__traceback__)
        line = next((f" (line {f.lineno})" for f in reversed(tb) if f.filename == str(path)), "")
        if isinstance(exc, SyntaxError):
            line = f" (line {exc.lineno})"
        raise AppDefinitionError(f"{path}{line}: {type(exc).__name__}: {exc}") from None
    cloudpickle.register_pickle_by_value(module)
    out: list[type[AppDef] | PythonApp] = []
    for value in vars(module).values():
        if isinstance(value, PythonApp) or (
            isinstance(value, type)
            and issubclass(value, AppDef)
            and value is not AppDef
            and value.__module__ == module_name
        ):
            value.source = path
            out.append(value)
    return out


AppLike = type[AppDef] | PythonApp


def load_apps(apps_dir: str | Path) -> list[AppLike]:
    """Every app defined in ``apps_dir`` (``*.yml``, ``*.yaml``, ``*.py``; ``_*`` skipped).

    Errors name the file: bad YAML, unknown keys, a broken Python file, two apps with
    the same name.
    """
    root = Path(apps_dir)
    if not root.is_dir():
        raise AppDefinitionError(f"{root}: no such directory (apps live in SITE/apps/)")
    found: dict[str, AppLike] = {}
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(("_", ".")))
    for path in files:
        apps: list[AppLike]
        if path.suffix in (".yml", ".yaml"):
            apps = list(_yaml_apps(path))
        elif path.suffix == ".py":
            apps = _python_apps(path)
        else:
            continue
        for app in apps:
            app.validate()
            if app.name in found:
                first = found[app.name].source
                raise AppDefinitionError(f"{path}: app {app.name!r} is already defined in {first}")
            found[app.name] = app
    return list(found.values())


def find_app(apps_dir: str | Path, name: str) -> AppLike:
    """The app called ``name`` in ``apps_dir`` (for the site's processing service)."""
    for app in load_apps(apps_dir):
        if app.name == name:
            return app
    raise AppDefinitionError(f"{apps_dir}: no app named {name!r}")


# ---------------------------------------------------------------- hooks on the site


@dataclass(frozen=True)
class HookOutcome:
    """What a hook decided: the job's next state and what to record in the Event."""

    state: JobState
    state_data: dict[str, Any]
    data: dict[str, Any] | None = None


def _default_after(hook: Hook, job: Job) -> JobState:
    if hook == "preprocess":
        return JobState.PREPROCESSED
    if hook == "postprocess":
        return JobState.POSTPROCESSED
    return JobState.RESTART_READY if job.retry_count < job.retry_limit else JobState.FAILED


def run_hook(app: type[AppDef], hook: Hook, job: Job, workdir: Path) -> HookOutcome:
    """Run one hook of ``app`` for ``job`` and say where the job goes next.

    ``None`` from the hook: the normal next state (preprocess -> PREPROCESSED,
    postprocess -> POSTPROCESSED, handle_error/handle_timeout -> RESTART_READY while
    retries remain, else FAILED). An exception: FAILED with the error in the Event.
    """
    instance = app(job, workdir=workdir)
    before = dict(instance.data)
    try:
        result = getattr(instance, hook)()
        state = _default_after(hook, job) if result is None else JobState(result)
        state_data: dict[str, Any] = {"hook": hook}
    except Exception as exc:
        state = JobState.FAILED
        tail = traceback.format_exc().strip().splitlines()[-5:]
        state_data = {"hook": hook, "error": f"{type(exc).__name__}: {exc}", "traceback": tail}
    data = instance.data if instance.data != before else None
    return HookOutcome(state=state, state_data=state_data, data=data)
