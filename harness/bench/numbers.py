"""How a figure is written for a person: one spelling for the terminal, report.html and Markdown."""

from __future__ import annotations

#: units that are counts: whole numbers are written without decimals
COUNTS = frozenset({"jobs", "events", "requests", "processes", "faults", "exits", "runs"})


def fmt(value: float | None, unit: str = "", *, none: str = "-") -> str:
    """Ratios and fractions to 3 places, counts and large numbers without decimals, else 3 digits."""
    if value is None:
        return none
    if unit in ("ratio", "fraction"):
        return f"{value:.3f}"
    if abs(value) >= 100 or (unit in COUNTS and float(value).is_integer()):
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
