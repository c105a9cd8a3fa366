"""The jinja2 templates every HTML report is drawn from: the test run, ``tolu bench`` and the
integration pipeline.

``base.html.j2`` is the one layout (inline styles from ``styles.css.j2``, a header, the main
part), ``macros.html.j2`` the shared pieces (embedded images, preformatted text). Autoescape is
on: whatever a run puts into a report (test ids, failure messages, job output, names) is shown
as text, never read as markup. A report module prepares its data and calls :func:`render`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

FOLDER = Path(__file__).parent


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(FOLDER),
        autoescape=True,
        # a misspelt name in a template is an error, not an empty cell
        undefined=jinja2.StrictUndefined,
        # an absent value (a job without a return code yet) is an empty cell, not "None"
        finalize=_blank_none,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    """``template`` (a file in this folder) rendered with ``context``."""
    return environment().get_template(template).render(**context)
