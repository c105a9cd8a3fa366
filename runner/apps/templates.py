"""Command templates: a job's argv without a shell.

``render_argv`` splits the template with ``shlex`` first and fills the ``{name}``
placeholders inside each token afterwards, so a parameter value can never add
arguments or shell syntax.
"""

from __future__ import annotations

import functools
import shlex
import string
from collections.abc import Mapping
from typing import Any, NamedTuple

from runner.apps.errors import AppDefinitionError, MissingParameter
from runner.models import App, Job

_FORMATTER = string.Formatter()


def placeholders(template: str) -> list[str]:
    """The parameter names a template uses, in order of first use."""
    names: list[str] = []
    for token in _split(template):
        for name in _token_fields(token, template):
            if name not in names:
                names.append(name)
    return names


def _split(template: str) -> tuple[str, ...]:
    return _split_cached(template)


# A launcher renders the same few templates for every job: shlex and the format
# parser are the bulk of it, so their results are kept (pure functions of the text).
@functools.lru_cache(maxsize=1024)
def _split_cached(template: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(template))
    except ValueError as exc:
        raise AppDefinitionError(f"command template {template!r}: {exc}") from None


class _Compiled(NamedTuple):
    """A template split and parsed once: each token with its placeholders (a token without
    any already unescaped), and the whole argv when no token has one."""

    tokens: tuple[tuple[str, tuple[str, ...]], ...]
    literal: tuple[str, ...] | None


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> _Compiled:
    tokens = []
    for token in _split(template):
        names = _token_fields(token, template)
        tokens.append((token if names else token.replace("{{", "{").replace("}}", "}"), names))
    literal = None if any(names for _, names in tokens) else tuple(token for token, _ in tokens)
    return _Compiled(tuple(tokens), literal)


def _token_fields(token: str, template: str) -> tuple[str, ...]:
    return _token_fields_cached(token, template)


@functools.lru_cache(maxsize=4096)
def _token_fields_cached(token: str, template: str) -> tuple[str, ...]:
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
    return tuple(names)


def merge_parameters(
    defaults: Mapping[str, Any], given: Mapping[str, Any], *, app: str = ""
) -> dict[str, Any]:
    """The app's defaults overlaid with the job's values; a required one missing is an error."""
    merged = {**defaults, **given}
    if None not in merged.values():  # nothing required is missing (once per job: no generator)
        return merged
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
    compiled = _compiled(template)
    if compiled.literal is not None:  # no placeholder: the same argv for every job
        return list(compiled.literal)
    argv: list[str] = []
    for token, names in compiled.tokens:
        if not names:
            argv.append(token)
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
