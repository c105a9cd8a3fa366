"""Figures for the HTML report and benchmarks: matplotlib -> base64 PNG (self-contained pages).

matplotlib is imported inside the functions (Agg backend), so importing the plugin
stays fast and works where no display exists.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

#: one colour per job state, stable across figures.
STATE_COLORS: dict[str, str] = {
    "CREATED": "#c7c7c7",
    "AWAITING_PARENTS": "#bcbd22",
    "READY": "#dbdb8d",
    "STAGED_IN": "#9edae5",
    "PREPROCESSED": "#17becf",
    "RUNNING": "#1f77b4",
    "RUN_DONE": "#aec7e8",
    "RUN_ERROR": "#d62728",
    "RUN_TIMEOUT": "#ff9896",
    "RESTART_READY": "#ff7f0e",
    "POSTPROCESSED": "#98df8a",
    "STAGED_OUT": "#2ca02c",
    "JOB_FINISHED": "#006d2c",
    "FAILED": "#7f0000",
    "KILLED": "#8c564b",
}
MAX_TIMELINE_JOBS = 150


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def to_base64_png(fig: Any, dpi: int = 80) -> str:
    """Render a figure to a base64 PNG string (for ``<img src="data:image/png;base64,...">``)."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def durations(tests: Sequence[Mapping[str, Any]], top: int = 25) -> str | None:
    """Horizontal bars of the slowest tests."""
    ranked = sorted((t for t in tests if t.get("duration")), key=lambda t: t["duration"], reverse=True)[:top]
    if not ranked:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(ranked) + 1))
    names = [_short(t["nodeid"]) for t in reversed(ranked)]
    values = [t["duration"] for t in reversed(ranked)]
    colors = ["#d62728" if t["outcome"] in ("failed", "error") else "#1f77b4" for t in reversed(ranked)]
    ax.barh(names, values, color=colors)
    ax.set_xlabel("seconds (setup + call + teardown)")
    ax.set_title(f"slowest {len(ranked)} tests")
    ax.tick_params(axis="y", labelsize=7)
    return to_base64_png(fig)


def _short(nodeid: str, limit: int = 70) -> str:
    return nodeid if len(nodeid) <= limit else "..." + nodeid[-(limit - 3) :]


def job_timeline(jobs: Sequence[Mapping[str, Any]]) -> str | None:
    """One row per job: coloured segments for the time spent in each state (from its Events)."""
    rows = [j for j in jobs if j.get("events")][:MAX_TIMELINE_JOBS]
    if not rows:
        return None
    t0 = min(_ts(e["timestamp"]) for j in rows for e in j["events"])
    t_end = max(_ts(e["timestamp"]) for j in rows for e in j["events"])
    span = max(t_end - t0, 1e-3)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, min(0.12 * len(rows) + 1.5, 12)))
    seen: set[str] = set()
    for row, job in enumerate(rows):
        events = job["events"]
        for index, event in enumerate(events):
            start = _ts(event["timestamp"]) - t0
            stop = (_ts(events[index + 1]["timestamp"]) - t0) if index + 1 < len(events) else span
            state = event["to"]
            width = max(stop - start, span / 400)
            label = state if state not in seen else None
            seen.add(state)
            ax.barh(row, width, left=start, height=0.8, color=STATE_COLORS.get(state, "#999999"), label=label)
    ax.set_xlabel("seconds since the first event")
    ax.set_ylabel("job")
    ax.set_yticks([])
    ax.set_title(f"job states over time ({len(rows)} of {len(jobs)} jobs)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    return to_base64_png(fig)


def throughput(jobs: Sequence[Mapping[str, Any]]) -> str | None:
    """Cumulative finished jobs and concurrently running jobs over time."""
    finished: list[float] = []
    changes: list[tuple[float, int]] = []
    for job in jobs:
        for event in job.get("events", []):
            t = _ts(event["timestamp"])
            if event["to"] == "JOB_FINISHED":
                finished.append(t)
            if event["to"] == "RUNNING":
                changes.append((t, 1))
            elif event.get("from") == "RUNNING":
                changes.append((t, -1))
    if not finished:
        return None
    t0 = min([*finished, *(c[0] for c in changes)])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    lines: list[Any] = []
    if finished:
        xs = sorted(t - t0 for t in finished)
        lines += ax.step(
            xs, range(1, len(xs) + 1), where="post", color="#006d2c", label="finished (cumulative)"
        )
        ax.set_ylabel("jobs finished")
    if changes:
        ax2 = ax.twinx()
        running, xs2, ys2 = 0, [], []
        for t, delta in sorted(changes):
            running += delta
            xs2.append(t - t0)
            ys2.append(running)
        lines += ax2.step(xs2, ys2, where="post", color="#1f77b4", alpha=0.7, label="running")
        ax2.set_ylabel("jobs running", color="#1f77b4")
    ax.set_xlabel("seconds")
    rate = f", {len(finished) / max(max(finished) - t0, 1e-3):.1f} jobs/s" if len(finished) > 1 else ""
    ax.set_title(f"throughput and concurrency ({len(finished)} finished{rate})")
    ax.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=7)
    return to_base64_png(fig)


# ---------------------------------------------------------------- benchmark figures (H8, harness/bench)


def lines_png(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hlines: Mapping[str, float] | None = None,
    step: bool = False,
) -> str:
    """One line per series label (``step``: a step function); ``hlines`` draws dashed reference levels."""
    plt = _pyplot()
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
    return to_base64_png(fig, dpi=96)


def histogram_png(
    samples: Mapping[str, Sequence[float]], *, title: str, xlabel: str, bins: int = 50, log: bool = False
) -> str:
    """Overlaid histograms, one per label (``log``: logarithmic counts)."""
    plt = _pyplot()
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
    return to_base64_png(fig, dpi=96)
