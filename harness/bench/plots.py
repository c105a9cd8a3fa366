"""Plots for the benchmark report: matplotlib (Agg) figures as base64 PNG strings.

(harness/plots.py, H3's, did not exist when this was written; these functions can
move there unchanged.)
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _png(fig: object) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def lines_png(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hlines: Mapping[str, float] | None = None,
    step: bool = False,
) -> str:
    """One line per series label; ``hlines`` draws dashed reference levels."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for label, (xs, ys) in series.items():
        if step:
            ax.step(list(xs), list(ys), where="post", label=label, linewidth=1.2)
        else:
            ax.plot(list(xs), list(ys), label=label, linewidth=1.2)
    for label, level in (hlines or {}).items():
        ax.axhline(level, linestyle="--", linewidth=1, color="grey", label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if series or hlines:
        ax.legend(fontsize="small")
    return _png(fig)


def histogram_png(
    samples: Mapping[str, Sequence[float]], *, title: str, xlabel: str, bins: int = 50, log: bool = False
) -> str:
    """Overlaid histograms, one per label."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for label, values in samples.items():
        if values:
            ax.hist(list(values), bins=bins, alpha=0.55, label=f"{label} (n={len(values)})")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("jobs")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if any(samples.values()):
        ax.legend(fontsize="small")
    return _png(fig)
