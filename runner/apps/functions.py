"""Python-function apps: a function shipped to the launcher, its arguments, its result.

``@python_app`` makes a function an app; the function travels cloudpickled (by value:
the launcher needs no copy of its module) and base64-encoded in
``App.serialized_function``, its arguments in ``Job.serialized_args``. The launcher
runs it with ``call_python``; ``job_result`` reads what it returned or raised.
"""

from __future__ import annotations

import contextlib
import inspect
import linecache
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any

import cloudpickle
from pydantic import ValidationError

from runner.apps.errors import AppDefinitionError, first_error
from runner.models import AppCreate, AppKind, Hook, Job, Resources
from runner.payload import dumps as _dumps
from runner.payload import loads as _loads


def serialize_function(fn: Callable[..., Any]) -> str:
    """The function, cloudpickled (by value) and base64-encoded, for ``AppCreate.serialized_function``.

    A Python function travels with the source of its file, so that a traceback in
    the job's process shows the failing lines (see :class:`_WithSource`).
    """
    shipped = _WithSource(fn) if isinstance(fn, FunctionType) else fn
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None or module.__name__ in ("__main__", "builtins"):
        return _dumps(shipped)
    # Pickle the code itself, so the launcher needs no copy of the defining module.
    if module.__name__ in cloudpickle.list_registry_pickle_by_value():
        return _dumps(shipped)
    cloudpickle.register_pickle_by_value(module)
    try:
        return _dumps(shipped)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


class _WithSource:
    """A function that pickles as ``with_source(fn, filename, source)``.

    Code pickled by value keeps its line numbers but not its file name (cloudpickle
    >= 3.1.3 writes ``<dynamic-code>``, for payloads that do not depend on where the
    code was defined), and the job's host may have no copy of the file anyway: a
    traceback would read ``File "<dynamic-code>", line 13, in explode`` with no source
    line. Shipping the file's text and its name lets the job's process put both back.
    """

    def __init__(self, fn: FunctionType) -> None:
        self.fn = fn
        self.filename = fn.__code__.co_filename
        self.source = "".join(linecache.getlines(self.filename, fn.__globals__))

    def __reduce__(self) -> tuple[Any, ...]:
        return with_source, (self.fn, self.filename, self.source)


def with_source(fn: FunctionType, filename: str, source: str) -> FunctionType:
    """``fn`` (just unpickled) with the file name of its module's code restored and the
    file's ``source`` in ``linecache``, so tracebacks show the lines that failed."""
    if source:
        # mtime None: linecache never checks the entry against a file on this host.
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    for f in _module_functions(fn):
        f.__code__ = _named(f.__code__, filename)
    return fn


def _named(code: CodeType, filename: str) -> CodeType:
    consts = tuple(_named(c, filename) if isinstance(c, CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _module_functions(fn: FunctionType) -> Iterator[FunctionType]:
    """``fn`` and the functions of its module it reaches: through its globals, closures,
    other python apps and the methods of the module's classes."""
    module = fn.__module__
    seen: set[int] = set()
    todo: list[Any] = [fn]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, PythonApp):
            todo.append(obj.fn)
        elif getattr(obj, "__module__", None) != module:
            continue
        elif isinstance(obj, FunctionType):
            yield obj
            todo.extend(obj.__globals__.values())
            for cell in obj.__closure__ or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    todo.append(cell.cell_contents)
        elif isinstance(obj, type):
            for member in vars(obj).values():
                if isinstance(member, staticmethod | classmethod):
                    todo.append(member.__func__)
                elif isinstance(member, property):
                    todo.extend(f for f in (member.fget, member.fset, member.fdel) if f is not None)
                else:
                    todo.append(member)


def serialize_args(args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None) -> str:
    """``(args, kwargs)`` cloudpickled and base64-encoded, for ``JobCreate.serialized_args``."""
    return _dumps((tuple(args), dict(kwargs or {})))


def deserialize(payload: str) -> Any:
    """The object serialized by :func:`serialize_function`, :func:`serialize_args` or a result."""
    return _loads(payload)


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
        free_parameters: bool | None = None,
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
        # Without declared parameters a function's keyword arguments are whatever it takes
        # (Python checks them when it runs); declared ones are checked at creation.
        self.free_parameters = not self.parameters if free_parameters is None else free_parameters
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
            raise AppDefinitionError(f"{where}python app {self.name!r}: {first_error(exc)}") from None

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
            free_parameters=self.free_parameters,
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
    free_parameters: bool | None = None,
) -> Any:
    """Make a Python function an app: ``@python_app`` or ``@python_app(resources={...})``.

    ``parameters`` (name -> default, None: required) are the keyword arguments a job may
    pass by name, checked when jobs are created; without them any name is taken
    (``free_parameters``, Python checks the call when the job runs).
    """

    def wrap(f: Callable[..., Any]) -> PythonApp:
        return PythonApp(
            f,
            name=name,
            description=description,
            parameters=parameters,
            resources=resources,
            environment=environment,
            free_parameters=free_parameters,
        )

    return wrap(fn) if fn is not None else wrap
