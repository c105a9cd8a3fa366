"""Whether a job's parameters fit its app: no unknown name, no required one missing.

Checked when jobs are created (services/job_create.py) and when a DAG is defined
(services/dags.py), so that ``--param nmae=bob`` is refused at once, with the app's
parameter list, instead of running with the default name. An app with
``free_parameters`` takes any name (a python function with ``**kwargs``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from runner.models import describe_parameters
from runner.server.errors import Invalid, Loc


def check(
    app_name: str,
    declared: Mapping[str, Any],
    free: bool,
    given: Mapping[str, Any],
    loc: Loc,
    *,
    what: str = "app",
) -> None:
    """Raise ``Invalid`` at ``loc`` (the parameters' path) if ``given`` does not fit the app
    (``what``: "app", or "DAG" for a DAG's own parameters)."""
    if not free:
        unknown = [k for k in given if k not in declared]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise Invalid.at(
                [*loc, name],
                f"{what} {app_name!r} has no parameter {name!r} (its parameters: "
                f"{describe_parameters(declared)}){hint}",
                "unknown_parameter",
            )
    missing = sorted(k for k, v in declared.items() if v is None and k not in given)
    if missing:
        raise Invalid.at(
            list(loc),
            f"{what} {app_name!r} needs parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(its parameters: {describe_parameters(declared)})",
            "missing",
        )


def locations_problem(summary: Mapping[str, Any], remote: str) -> str | None:
    """Why the ``LOCATION:PATH`` end ``remote`` names a location its site does not have.

    The site reports its transfer locations in its settings summary (``tolu site init``,
    the agent); a site that reported none is not checked here (the agent still is).
    """
    known: Sequence[str] | None = summary.get("transfer_locations")
    if not isinstance(known, list):
        return None
    alias = remote.partition(":")[0]
    if alias in known:
        return None
    return f"unknown transfer location {alias!r} (the site knows: {', '.join(known) or 'none'})"
