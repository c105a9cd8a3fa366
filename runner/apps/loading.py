"""Loading a site's ``apps/`` folder: YAML files and Python files, errors naming the file."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from runner.apps.definition import AppDef
from runner.apps.errors import AppDefinitionError, first_error
from runner.apps.functions import PythonApp
from runner.models import Resources

AppLike = type[AppDef] | PythonApp


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
    free_parameters: bool = False


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
            raise AppDefinitionError(f"{where}: {first_error(exc)}") from None
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
                "free_parameters": spec.free_parameters,
                "source": path,
            },
        )
        out.append(cls)
    return out


def _python_apps(path: Path) -> list[AppLike]:
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
    # The module is not importable where the jobs run: its functions travel by value.
    cloudpickle.register_pickle_by_value(module)
    out: list[AppLike] = []
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
