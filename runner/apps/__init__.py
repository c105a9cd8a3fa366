"""Apps: what a site's ``apps/`` folder holds, and how a job's argv or call is made.

Three ways to define an app (see docs/apps.md):

- a YAML file: ``name``, ``description``, ``command_template``, ``parameters`` (name ->
  default, ``null`` = required), ``resources``, ``environment``; one app per file, or a
  list of them;
- a Python file with a subclass of :class:`AppDef` (class attributes as in YAML, plus
  optional hook methods ``preprocess``/``postprocess``/``handle_error``/``handle_timeout``);
- a Python function decorated with :func:`python_app`, shipped to the launcher
  cloudpickled and base64-encoded.

Modules: ``templates`` (argv from a command template, no shell), ``functions``
(python-function apps: pickling, ``call_python``, ``job_result``), ``definition``
(``AppDef``), ``loading`` (``load_apps`` for YAML and ``.py`` files), ``hooks``
(``run_hook`` on the site), ``errors``.
"""

from runner.apps.definition import AppDef
from runner.apps.errors import AppDefinitionError, MissingParameter
from runner.apps.functions import (
    PythonApp,
    PythonJobError,
    call_python,
    deserialize,
    job_result,
    python_app,
    serialize_args,
    serialize_function,
)
from runner.apps.hooks import HookOutcome, run_hook
from runner.apps.loading import AppLike, find_app, load_apps
from runner.apps.templates import job_argv, merge_parameters, placeholders, render_argv

__all__ = [
    "AppDef",
    "AppDefinitionError",
    "AppLike",
    "HookOutcome",
    "MissingParameter",
    "PythonApp",
    "PythonJobError",
    "call_python",
    "deserialize",
    "find_app",
    "job_argv",
    "job_result",
    "load_apps",
    "merge_parameters",
    "placeholders",
    "python_app",
    "render_argv",
    "run_hook",
    "serialize_args",
    "serialize_function",
]
