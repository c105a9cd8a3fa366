"""Small, dependency-free statistics over benchmark timings."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from harness.bench.schema import Series, Stat, Trial


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear interpolation; None for no values."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_figures(prefix: str, values_ms: Sequence[float]) -> dict[str, float | None]:
    """``{prefix}_p50_ms``, p90, p99, max and mean for a list of latencies in ms."""
    return {
        f"{prefix}_p50_ms": percentile(values_ms, 50),
        f"{prefix}_p90_ms": percentile(values_ms, 90),
        f"{prefix}_p99_ms": percentile(values_ms, 99),
        f"{prefix}_max_ms": max(values_ms) if values_ms else None,
        f"{prefix}_mean_ms": statistics.fmean(values_ms) if values_ms else None,
    }


def summarize(trials: Sequence[Trial]) -> dict[str, Stat]:
    """min/median/max of every figure over the trials (None values skipped)."""
    names: list[str] = []
    for trial in trials:
        names.extend(n for n in trial.figures if n not in names)
    out: dict[str, Stat] = {}
    for name in names:
        values = [t.figures.get(name) for t in trials]
        present = [v for v in values if v is not None]
        out[name] = Stat(
            min=min(present) if present else None,
            median=statistics.median(present) if present else None,
            max=max(present) if present else None,
            values=values,
        )
    return out


def rate(jobs: int, seconds: float) -> float | None:
    return jobs / seconds if seconds > 0 else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def concurrency(intervals: Iterable[tuple[float, float]], *, step: float) -> Series:
    """Mean number of open intervals in each bin of ``step`` seconds.

    A time average, not a sample: millisecond-long jobs still count for the share
    of the bin they were running, so the curve is the slot occupancy.
    """
    spans = [(a, max(a, b)) for a, b in intervals]
    if not spans:
        return Series(t=[], values=[])
    nbins = int(max(b for _, b in spans) // step) + 1
    busy = [0.0] * nbins
    for a, b in spans:
        first, last = int(a // step), int(b // step)
        for i in range(max(0, first), min(nbins - 1, last) + 1):
            lo, hi = max(a, i * step), min(b, (i + 1) * step)
            if hi > lo:
                busy[i] += hi - lo
    return Series(t=[round(i * step, 6) for i in range(nbins)], values=[x / step for x in busy])


def completions(times: Iterable[float], *, step: float) -> Series:
    """Completions per second in bins of ``step`` seconds."""
    data = sorted(times)
    if not data:
        return Series(t=[], values=[])
    nbins = int(data[-1] // step) + 1
    counts = [0] * nbins
    for t in data:
        counts[max(0, int(t // step))] += 1
    return Series(t=[round(i * step, 6) for i in range(nbins)], values=[c / step for c in counts])


def time_step(duration_s: float, events: int = 10_000) -> float:
    """A bin width giving at most a few hundred bins, and ~20 events per bin on average."""
    most = max(10.0, min(400.0, events / 20))
    for step in (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0):
        if duration_s / step <= most:
            return step
    return 120.0


def dispatch_waits(
    jobs: Sequence[tuple[float, float]], ends: Sequence[float], *, slots: int, ready: float
) -> list[float]:
    """How long each job waited while a slot was free: the launchers' dispatch latency.

    ``jobs`` are (created, started) pairs, ``ends`` when runs ended, ``ready`` when the
    first slot could take a job. The k-th start (in time order) takes the slot the
    (k - slots)-th end (in time order) freed, as if the slots were one pool; before
    that, the slots are free from ``ready``. A job waits from the later of its
    creation and its slot's freeing to its start.
    """
    ordered = sorted(jobs, key=lambda pair: pair[1])
    freed = sorted(ends)
    out = []
    for k, (created, started) in enumerate(ordered):
        free = ready if k < slots else freed[k - slots] if k - slots < len(freed) else started
        out.append(max(0.0, started - max(created, free)))
    return out
