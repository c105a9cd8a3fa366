"""``report.html``: one self-contained page (inline CSS, plots as data: URIs)."""

from __future__ import annotations

import html
import shlex
from collections.abc import Sequence
from pathlib import Path

from harness import plots
from harness.bench.figures import COMPARED_PREFIX
from harness.bench.schema import BenchResult, Scenario
from harness.bench.throughput import JobRow

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.ratio td{font-weight:600}.note{background:#fff8e0;border-left:4px solid #e0b000;padding:.4em .8em}
.bad{color:#b00020}.good{color:#107020}img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}
"""


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "fraction" or unit == "ratio":
        return f"{value:.3f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _e(text: object) -> str:
    return html.escape(str(text))


def _img(b64: str, alt: str) -> str:
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{b64}"></p>'


def _machine(result: BenchResult) -> str:
    m = result.machine
    rows = [
        ("CPU", m.cpu_model),
        ("cores", f"{m.cores_logical} logical / {m.cores_physical or '?'} physical"),
        ("memory", f"{m.memory_bytes / 2**30:.1f} GiB"),
        ("OS", f"{m.os} (kernel {m.kernel})"),
        ("Python", f"{m.python_implementation} {m.python}"),
        ("MPI", f"{m.mpi or '-'} ({m.mpiexec or 'no mpiexec'})"),
        ("database", f"{m.database} {m.database_version or ''}"),
        ("tolu", f"{m.tolu_version} @ {(m.git_commit or '?')[:12]}"),
        ("load average at start", ", ".join(f"{x:.2f}" for x in m.load_average)),
        ("host", m.hostname),
    ]
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _summary(scenario: Scenario) -> str:
    cols = ("figure", "median", "min", "max", "unit", "aim", "what")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    body = []
    for name, stat in scenario.summary.items():
        if stat.median is None:
            continue
        info = scenario.figure_info.get(name)
        unit = info.unit if info else ""
        cls = ' class="ratio"' if name.startswith(COMPARED_PREFIX) else ""
        aim = (info.aim if info else "") or ""
        body.append(
            f"<tr{cls}><td>{_e(name)}</td><td>{_fmt(stat.median, unit)}</td><td>{_fmt(stat.min, unit)}</td>"
            f"<td>{_fmt(stat.max, unit)}</td><td>{_e(unit)}</td><td>{_e(aim)}</td>"
            f"<td style='text-align:left'>{_e(info.description if info else '')}</td></tr>"
        )
    return "<table>" + head + "".join(body) + "</table>"


def _trials(scenario: Scenario) -> str:
    parts = []
    for trial in scenario.trials:
        phases = "".join(
            f"<tr><td>{_e(p.name)}</td><td>{p.start_s:.3f}</td><td>{p.end_s:.3f}</td><td>{p.seconds:.3f}</td>"
            f"<td>{p.jobs}</td><td>{_fmt(p.jobs_per_s)}</td></tr>"
            for p in trial.phases
        )
        bases = "".join(
            f"<tr><td>{_e(b.name)}</td><td style='text-align:left'><code>{_e(shlex.join(b.command))}</code>"
            "</td>"
            f"<td>{b.workers}</td><td>{b.jobs}</td><td>{b.seconds:.3f}</td><td>{_fmt(b.jobs_per_s)}</td>"
            f"<td style='text-align:left'>{_e(b.description)}</td></tr>"
            for b in trial.baselines
        )
        states = ", ".join(f"{k}: {v}" for k, v in sorted(trial.final_states.items())) or "-"
        block = [f"<h3>trial {trial.index} ({_e(trial.started_at.isoformat(timespec='seconds'))})</h3>"]
        if phases:
            block.append(
                "<table><tr><th>phase</th><th>start s</th><th>end s</th><th>seconds</th><th>jobs</th>"
                f"<th>jobs/s</th></tr>{phases}</table>"
            )
        if bases:
            block.append(
                "<table><tr><th>baseline</th><th>command</th><th>workers</th><th>jobs</th><th>seconds</th>"
                f"<th>jobs/s</th><th>how</th></tr>{bases}</table>"
            )
        if trial.final_states:
            block.append(f"<p>final states: {_e(states)}</p>")
        block.extend(f"<p>{_e(n)}</p>" for n in trial.notes)
        if trial.requests_by_route:
            routes = "".join(
                f"<tr><td>{_e(route)}</td><td>{count:,}</td></tr>"
                for route, count in trial.requests_by_route.items()
            )
            block.append(f"<table><tr><th>server route</th><th>requests</th></tr>{routes}</table>")
        parts.append("".join(block))
    return "".join(parts)


def _throughput_plots(scenario: Scenario, rows: Sequence[JobRow]) -> str:
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
        out.append(
            _img(
                plots.lines_png(
                    done,
                    title=f"{scenario.name}: throughput over time",
                    xlabel="seconds since first submission",
                    ylabel="jobs completed / s (RUN_DONE)",
                    hlines=ref,
                ),
                "throughput over time",
            )
        )
    running = {
        f"trial {t.index}": (t.series["running"].t, t.series["running"].values)
        for t in scenario.trials
        if "running" in t.series
    }
    if running:
        slots = scenario.parameters.get("workers")
        out.append(
            _img(
                plots.lines_png(
                    running,
                    title=f"{scenario.name}: jobs running (slot utilization)",
                    xlabel="seconds since first submission",
                    ylabel="jobs running",
                    hlines={"slots": float(slots)} if slots else None,
                    step=True,
                ),
                "jobs running over time",
            )
        )
    mine = [r for r in rows if r.scenario == scenario.name]
    queue = [(r.running_s - r.created_s) * 1000 for r in mine if r.running_s is not None]
    run = [
        (r.final_s - r.running_s) * 1000 for r in mine if r.running_s is not None and r.final_s is not None
    ]
    if queue or run:
        out.append(
            _img(
                plots.histogram_png(
                    {"creation → RUNNING": queue}, title=f"{scenario.name}: queue latency", xlabel="ms"
                ),
                "queue latency histogram",
            )
        )
        out.append(
            _img(
                plots.histogram_png(
                    {"RUNNING → final": run}, title=f"{scenario.name}: run latency", xlabel="ms", log=True
                ),
                "run latency histogram",
            )
        )
    pages = {f"trial {t.index}": t.raw["page_ms"] for t in scenario.trials if "page_ms" in t.raw}
    if any(pages.values()):
        out.append(
            _img(
                plots.histogram_png(
                    pages, title=f"{scenario.name}: filtered 50-row page latency", xlabel="ms"
                ),
                "page latency histogram",
            )
        )
    return "".join(out)


def _comparison(result: BenchResult) -> str:
    comp = result.comparison
    if comp is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(r.scenario)}</td><td>{_e(r.figure)}</td><td>{_fmt(r.before, 'ratio')}</td>"
        f"<td>{_fmt(r.after, 'ratio')}</td><td>{_fmt(r.change_percent)}%</td>"
        f"<td class='{'bad' if r.regressed else 'good'}'>{'REGRESSED' if r.regressed else 'ok'}</td></tr>"
        for r in comp.rows
    )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in comp.notes)
    return (
        f"<h2>Compared with {_e(comp.baseline_path)}</h2><p>fail on: {_e(comp.fail_on_percent)}%</p>{notes}"
        "<table><tr><th>scenario</th><th>figure</th><th>before</th><th>after</th><th>change</th><th></th></tr>"
        f"{rows}</table>"
    )


def render(result: BenchResult, rows: Sequence[JobRow]) -> str:
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in result.notes)
    sections = []
    for scenario in result.scenarios:
        params = ", ".join(f"{k}={v}" for k, v in scenario.parameters.items())
        sections.append(
            f"<h2>{_e(scenario.name)}</h2><p>{_e(scenario.description)}</p><p><small>{_e(params)}</small></p>"
            f"{_summary(scenario)}{_throughput_plots(scenario, rows)}{_trials(scenario)}"
        )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>tolu bench {_e(result.command)}</title><style>{CSS}</style></head><body>"
        f"<h1>tolu bench {_e(result.command)}</h1>"
        f"<p><code>{_e(shlex.join(result.argv))}</code> — "
        f"{_e(result.created_at.isoformat(timespec='seconds'))}, "
        f"{result.seconds:.1f} s; schema {_e(result.schema_version)}; per-job timestamps in "
        f"<code>{_e(result.csv or '')}</code></p>"
        f"{notes}<h2>Machine</h2>{_machine(result)}{_comparison(result)}{''.join(sections)}</body></html>\n"
    )


def write(result: BenchResult, path: Path, rows: Sequence[JobRow] = ()) -> Path:
    path.write_text(render(result, rows))
    return path
