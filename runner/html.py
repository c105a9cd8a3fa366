"""Small HTML tables for notebooks (``_repr_html_`` of the models and the client's lists).

Every value is escaped; nothing but a ``<table>`` with inline styles comes out (no
scripts, no external CSS), so a notebook shows it the same offline and in exports.
A row may be marked as a failure: it is drawn red, with its reason in the last column.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

_TABLE = "border-collapse:collapse;font-size:12px;text-align:left"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
_FAILED = "background:#fde8e8;color:#9b1c1c"


def text(value: Any) -> str:
    """``value`` as escaped text; None is a dash."""
    return "-" if value is None else html.escape(str(value))


def fields_table(title: str, fields: Iterable[tuple[str, Any]]) -> str:
    """One object: a caption and two columns (field, value)."""
    body = "".join(
        f'<tr><th style="{_CELL}">{text(k)}</th><td style="{_CELL}">{text(v)}</td></tr>' for k, v in fields
    )
    caption = f'<caption style="text-align:left"><b>{text(title)}</b></caption>'
    return f'<table style="{_TABLE}">{caption}{body}</table>'


def rows_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str = "",
    failed: Iterable[bool] | None = None,
    footer: str = "",
) -> str:
    """Many objects, one row each; rows flagged in ``failed`` are drawn red."""
    flags = list(failed) if failed is not None else None
    head = "".join(f'<th style="{_CELL}">{text(c)}</th>' for c in columns)
    body = []
    for i, row in enumerate(rows):
        style = f' style="{_FAILED}"' if flags is not None and i < len(flags) and flags[i] else ""
        cells = "".join(f'<td style="{_CELL}">{text(v)}</td>' for v in row)
        body.append(f"<tr{style}>{cells}</tr>")
    caption = f'<caption style="text-align:left"><b>{text(title)}</b></caption>' if title else ""
    foot = f'<div style="font-size:11px;color:#666">{text(footer)}</div>' if footer else ""
    return f'<table style="{_TABLE}">{caption}<tr>{head}</tr>{"".join(body)}</table>{foot}'
