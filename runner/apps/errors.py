"""The errors of app definitions, and how a pydantic error becomes one line."""

from __future__ import annotations

from pydantic import ValidationError


class AppDefinitionError(ValueError):
    """An app definition that cannot be used; the message names the file (or app) and the problem."""


class MissingParameter(AppDefinitionError):
    """A job lacks a parameter its app requires."""


def first_error(exc: ValidationError) -> str:
    """``loc: message`` of the first error, and how many more there are."""
    errs = exc.errors()
    first = errs[0]
    loc = ".".join(str(p) for p in first["loc"])
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc}: {first['msg']}{more}" if loc else f"{first['msg']}{more}"
