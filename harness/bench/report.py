"""``report.html`` of a bench run: one self-contained page (inline CSS, plots as data: URIs),
drawn from ``harness/templates/bench.html.j2``. This module prepares the figures and plots."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import plots, templates
from harness.bench import verdicts
from harness.bench.figures import COMPARED_PREFIX
from harness.bench.numbers import fmt
from harness.bench.schema import BenchResult, Machine, Scenario, Stat
from harness.bench.throughput import JobRow


@dataclass(frozen=True)
class Plot:
    png: str  # base64
    alt: str


@dataclass(frozen=True)
class FigureRow:
    name: str
    stat: Stat
    unit: str
    aim: str
    description: str
    compared: bool  # a ratio that --compare checks: shown in bold
    mark: str  # ✓, ✗ or ? for a figure with an aim, "" otherwise
    outcome: str  # met | missed | unmeasured | ""


def _machine(result: BenchResult) -> list[tuple[str, str]]:
    m = result.machine
    return [
        ("CPU", m.cpu_model),
        ("cores", f"{m.cores_logical} logical / {m.cores_physical or '?'} physical"),
        ("memory", f"{m.memory_bytes / 2**30:.1f} GiB"),
        ("OS", f"{m.os} (kernel {m.kernel})"),
        ("Python", f"{m.python_implementation} {m.python}" + _interpreter(m)),
        ("MPI", f"{m.mpi or '-'} ({m.mpiexec or 'no mpiexec'})"),
        ("database", f"{m.database} {m.database_version or ''}"),
        ("job directories on", m.file_system or "-"),
        ("tolu", f"{m.tolu_version} @ {(m.git_commit or '?')[:12]}"),
        ("load average at start", ", ".join(f"{x:.2f}" for x in m.load_average)),
        ("host", m.hostname),
    ]


def _interpreter(m: Machine) -> str:
    """Where the interpreter is and how fast it ran a plain loop (empty for older runs)."""
    parts = [m.python_executable or ""]
    if m.python_loop_ns is not None:
        parts.append(f"{m.python_loop_ns:.0f} ns per loop step")
    shown = ", ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


def _figures(scenario: Scenario) -> list[FigureRow]:
    rows = []
    outcomes = {v.figure: v.outcome for v in scenario.verdicts}
    for name, stat in scenario.summary.items():
        if stat.median is None and name not in outcomes:
            continue
        info = scenario.figure_info.get(name)
        rows.append(
            FigureRow(
                name=name,
                stat=stat,
                unit=info.unit if info else "",
                aim=(info.aim if info else "") or "",
                description=info.description if info else "",
                compared=name.startswith(COMPARED_PREFIX),
                mark=verdicts.MARKS[outcomes[name]] if name in outcomes else "",
                outcome=outcomes.get(name, ""),
            )
        )
    return rows


def _throughput_plots(scenario: Scenario, rows: Sequence[JobRow]) -> list[Plot]:
    out = []
    done = {
        f"trial {t.index}": (t.series["completions_per_s"].t, t.series["completions_per_s"].values)
        for t in scenario.trials
        if "completions_per_s" in t.series
    }
    if done:
        base = scenario.summary.get("baseline_mpiexec_jobs_per_s") or scenario.summary.get(
            "baseline_pool_jobs_per_s"
        )
        ref = {"baseline (median)": base.median} if base and base.median else None
        png = plots.lines_png(
            done,
            title=f"{scenario.name}: throughput over time",
            xlabel="seconds since first submission",
            ylabel="jobs completed / s (RUN_DONE)",
            hlines=ref,
        )
        out.append(Plot(png, "throughput over time"))
    running = {
        f"trial {t.index}": (t.series["running"].t, t.series["running"].values)
        for t in scenario.trials
        if "running" in t.series
    }
    if running:
        slots = scenario.parameters.get("workers")
        png = plots.lines_png(
            running,
            title=f"{scenario.name}: jobs running (slot utilization)",
            xlabel="seconds since first submission",
            ylabel="jobs running",
            hlines={"slots": float(slots)} if slots else None,
            step=True,
        )
        out.append(Plot(png, "jobs running over time"))
    mine = [r for r in rows if r.scenario == scenario.name]
    queue = [(r.running_s - r.created_s) * 1000 for r in mine if r.running_s is not None]
    run = [
        (r.final_s - r.running_s) * 1000 for r in mine if r.running_s is not None and r.final_s is not None
    ]
    if queue or run:
        png = plots.histogram_png(
            {"creation → RUNNING": queue}, title=f"{scenario.name}: queue latency", xlabel="ms"
        )
        out.append(Plot(png, "queue latency histogram"))
        png = plots.histogram_png(
            {"RUNNING → final": run}, title=f"{scenario.name}: run latency", xlabel="ms", log=True
        )
        out.append(Plot(png, "run latency histogram"))
    pages = {f"trial {t.index}": t.raw["page_ms"] for t in scenario.trials if "page_ms" in t.raw}
    if any(pages.values()):
        png = plots.histogram_png(pages, title=f"{scenario.name}: filtered 50-row page latency", xlabel="ms")
        out.append(Plot(png, "page latency histogram"))
    return out


def _scenario(scenario: Scenario, rows: Sequence[JobRow]) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "parameters": ", ".join(f"{k}={v}" for k, v in scenario.parameters.items()),
        "figures": _figures(scenario),
        "plots": _throughput_plots(scenario, rows),
    }


def render(result: BenchResult, rows: Sequence[JobRow]) -> str:
    return templates.render(
        "bench.html.j2",
        result=result,
        argv=shlex.join(result.argv),
        machine=_machine(result),
        scenarios=[_scenario(s, rows) for s in result.scenarios],
        fmt=fmt,
        shell=shlex.join,
    )


def write(result: BenchResult, path: Path, rows: Sequence[JobRow] = ()) -> Path:
    path.write_text(render(result, rows))
    return path
