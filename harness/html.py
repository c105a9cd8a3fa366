"""report.html: one self-contained page (inline CSS, plots as base64 PNG) a newcomer can read.

Order: what ran where, the verdict, failures first (with their logs' tails), log
errors, skips with reasons, per-test timings, then the job plots of tests that ran jobs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from harness import plots

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#eceff1;padding:16px 28px}header h1{margin:0 0 4px;font-size:20px}
main{padding:8px 28px 40px;max-width:1200px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:14px 0}
.card{padding:8px 14px;border-radius:6px;background:#fff;border:1px solid #ddd;min-width:80px}
.card b{display:block;font-size:22px}
.passed{color:#1b5e20}.failed,.error{color:#b71c1c}.skipped,.xfailed,.xpassed{color:#8d6e00}
.verdict{font-weight:600;padding:8px 12px;border-radius:6px;display:inline-block}
.ok{background:#e8f5e9;color:#1b5e20}.bad{background:#ffebee;color:#b71c1c}.warn{background:#fff8e1;color:#8d6e00}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #e0e0e0;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#263238;color:#eceff1;padding:10px;overflow:auto;max-height:420px;font-size:12px;border-radius:4px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}.test{background:#fff;border:1px solid #ddd;
border-radius:6px;padding:8px 14px;margin:12px 0}img{max-width:100%}code{background:#eee;padding:0 3px}
.muted{color:#666}
"""


MIN_TESTS_FOR_PLOT = 5
MAX_TESTS_WITH_JOB_PLOTS = 10


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _img(data: str | None, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">' if data else ""


def _pre(text: str | None) -> str:
    return f"<pre>{_e(text)}</pre>" if text else ""


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ") + " UTC" if len(iso) >= 19 else iso


def _header(report: Mapping[str, Any]) -> str:
    loc = report["location"]
    env = report["environment"]
    return (
        f"<header><h1>tolu test run {_e(report['run_id'])}</h1>"
        f"<div>{_e(_when(report['start']))} &rarr; {_e(_when(report['end']))} "
        f"({report['duration']:.1f} s) at "
        f"<b>{_e(loc['name'])}</b> ({_e(loc['reason'])}) on {_e(env['hostname'])}</div></header>"
    )


def _summary(report: Mapping[str, Any]) -> str:
    s = report["summary"]
    bad = s["failed"] + s["error"]
    missing = report["required"]["missing"]
    if bad or missing or report["exitstatus"] not in (0, 5):
        verdict = f'<span class="verdict bad">FAILED: {bad} failed/error'
        verdict += f"; required but missing: {_e(', '.join(missing))}" if missing else ""
        verdict += "</span>"
    elif report["flagged"]:
        verdict = (
            '<span class="verdict warn">PASSED, but flagged: '
            f"{report['log_errors']['unexpected']} unexpected ERROR log lines</span>"
        )
    else:
        verdict = '<span class="verdict ok">PASSED</span>'
    cards = "".join(
        f'<div class="card {k}"><b>{s[k]}</b>{k}</div>'
        for k in ("total", "passed", "failed", "error", "skipped", "xfailed", "xpassed")
        if s[k] or k == "total"
    )
    loc, env = report["location"], report["environment"]
    probes = "".join(
        f"<tr><td>{_e(p['feature'])}</td><td class='{'passed' if p['present'] else 'skipped'}'>"
        f"{'present' if p['present'] else 'absent'}</td><td>{_e(p['detail'])}</td></tr>"
        for p in loc["probes"]
    )
    env_rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(', '.join(map(str, v)) if isinstance(v, list) else v)}</td></tr>"
        for k, v in env.items()
    )
    return (
        f'<h2>Summary</h2>{verdict}<div class="cards">{cards}</div>'
        f"<p>Artifacts: <code>{_e(report['artifacts']['dir'])}</code> (junit.xml, report.json, tests/).</p>"
        f"<details><summary>Location {_e(loc['name'])}: features and probes</summary>"
        f"<p>{_e(loc.get('description', ''))}. Scheduler <b>{_e(loc['scheduler'])}</b>, MPI launcher "
        f"<b>{_e(loc['mpi_launcher'])}</b>, node {loc['node']['cpus']} CPUs / {loc['node']['gpus']} GPUs. "
        f"Declared features: {_e(', '.join(loc['declared_features']) or 'none')}; available: "
        f"{_e(', '.join(loc['features']) or 'none')}; required: "
        f"{_e(', '.join(report['required']['features']) or 'none')}.</p>"
        f"<table><tr><th>feature</th><th>probe</th><th>detail</th></tr>{probes}</table></details>"
        f"<details><summary>Environment</summary><table>{env_rows}</table></details>"
    )


def _log_tails(evidence: Mapping[str, Any] | None) -> str:
    if not evidence:
        return ""
    parts = []
    for log in evidence.get("logs", []):
        parts.append(
            f"<details><summary>{_e(log['label'])} (tail; file {_e(evidence.get('dir', ''))}/"
            f"{_e(log['file'])})</summary>{_pre(log['tail'] or '(empty)')}</details>"
        )
    for job in evidence.get("jobs", {}).get("failed", []):
        parts.append(
            f"<details><summary>job {job['id']} {_e(job['state'])} rc={_e(job['return_code'])} "
            f"workdir {_e(job['workdir'])}</summary>{_pre(job.get('tail') or '(no output)')}</details>"
        )
    return "".join(parts)


def _failures(report: Mapping[str, Any]) -> str:
    failed = [t for t in report["tests"] if t["outcome"] in ("failed", "error", "xpassed")]
    if not failed:
        return ""
    out = [f"<h2>Failures ({len(failed)})</h2>"]
    for test in failed:
        out.append(
            f'<div class="test"><b class="{test["outcome"]}">{_e(test["outcome"].upper())}</b> '
            f"<code>{_e(test['nodeid'])}</code> <span class='muted'>{test['duration']:.2f} s</span>"
            f"{_pre(test.get('longrepr'))}{_log_tails(test.get('evidence'))}</div>"
        )
    return "".join(out)


def _log_errors(report: Mapping[str, Any]) -> str:
    entries = report["log_errors"]["entries"]
    if not entries:
        return ""
    unexpected = '<b class="failed">unexpected</b>'
    rows = "".join(
        f"<tr><td>{'expected' if e['expected'] else unexpected}</td>"
        f"<td><code>{_e(e['nodeid'])}</code></td><td>{_e(e['file'])}:{e['line']}</td><td>{_e(e['text'])}</td></tr>"
        for e in entries
    )
    return (
        f"<h2>ERROR lines in collected logs ({report['log_errors']['unexpected']} unexpected)</h2>"
        f"<table><tr><th></th><th>test</th><th>where</th><th>line</th></tr>{rows}</table>"
    )


def _skips(report: Mapping[str, Any]) -> str:
    skipped = [t for t in report["tests"] if t["outcome"] in ("skipped", "xfailed")]
    if not skipped:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(t['nodeid'])}</code></td><td>{_e(t['skip_reason'])}</td></tr>" for t in skipped
    )
    return (
        f"<h2>Skipped and expected failures ({len(skipped)})</h2><details><summary>reasons</summary>"
        f"<table><tr><th>test</th><th>reason</th></tr>{rows}</table></details>"
    )


def _timings(report: Mapping[str, Any]) -> str:
    tests = sorted(report["tests"], key=lambda t: t["duration"], reverse=True)
    if not tests:
        return "<h2>Tests</h2><p>No tests ran.</p>"
    rows = "".join(
        f"<tr><td><code>{_e(t['nodeid'])}</code></td><td class='{t['outcome']}'>{t['outcome']}</td>"
        f"<td class='num'>{t['duration']:.3f}</td><td>{_e(', '.join(t['markers']))}</td></tr>"
        for t in tests
    )
    # A plot of one or two bars says nothing the table does not (and matplotlib costs seconds).
    figure = plots.durations(tests) if len(tests) >= MIN_TESTS_FOR_PLOT else None
    return (
        f"<h2>Per-test timings</h2>{_img(figure, 'slowest tests')}"
        f"<details><summary>all {len(tests)} tests</summary><table><tr><th>test</th><th>outcome</th>"
        f"<th>seconds</th><th>markers</th></tr>{rows}</table></details>"
    )


def _job_plot_order(test: Mapping[str, Any]) -> tuple[int, int]:
    """Failed tests first, then the ones that ran the most jobs."""
    failed = test["outcome"] in ("failed", "error")
    return (0 if failed else 1, -int(((test.get("evidence") or {}).get("jobs") or {}).get("count") or 0))


def _jobs(report: Mapping[str, Any], run_dir: Path) -> str:
    with_jobs = [
        t
        for t in report["tests"]
        if ((t.get("evidence") or {}).get("jobs") or {}).get("count")
        and ((t.get("evidence") or {}).get("jobs") or {}).get("file")
    ]
    # Plots cost about a second each: draw them for the tests a reader looks at first.
    plotted = {t["nodeid"] for t in sorted(with_jobs, key=_job_plot_order)[:MAX_TESTS_WITH_JOB_PLOTS]}
    out: list[str] = []
    for test in with_jobs:
        evidence = test["evidence"]
        jobs_info = evidence["jobs"]
        try:
            jobs = json.loads((run_dir / evidence["dir"] / jobs_info["file"]).read_text())
        except (OSError, ValueError, KeyError):
            continue
        states = ", ".join(f"{n} {s}" for s, n in sorted(jobs_info["states"].items()))
        batch = evidence.get("batch_jobs") or []
        batch_rows = "".join(
            f"<tr><td>{b['id']}</td><td>{_e(b['scheduler_id'])}</td><td>{_e(b['state'])}</td>"
            f"<td>{_e(b.get('start_time'))}</td><td>{_e(b.get('end_time'))}</td></tr>"
            for b in batch
        )
        batch_html = (
            f"<table><tr><th>batch job</th><th>scheduler id</th><th>state</th><th>start</th>"
            f"<th>end</th></tr>{batch_rows}</table>"
            if batch
            else ""
        )
        figures = ""
        if test["nodeid"] in plotted:
            figures = (
                f"{_img(plots.job_timeline(jobs), 'job state timeline')}"
                f"{_img(plots.throughput(jobs), 'throughput')}"
            )
        out.append(
            f'<div class="test"><code>{_e(test["nodeid"])}</code> <span class="{test["outcome"]}">'
            f"{test['outcome']}</span><p>{jobs_info['count']} jobs: {_e(states)} "
            f"<span class='muted'>(state histories: {_e(evidence['dir'])}/{_e(jobs_info['file'])})</span></p>"
            f"{figures}{batch_html}</div>"
        )
    return f"<h2>Jobs</h2>{''.join(out)}" if out else ""


def render(report: Mapping[str, Any], run_dir: Path) -> str:
    body = "".join(
        [
            _summary(report),
            _failures(report),
            _log_errors(report),
            _skips(report),
            _timings(report),
            _jobs(report, run_dir),
        ]
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>tolu run {_e(report['run_id'])}</title><style>{CSS}</style></head>"
        f"<body>{_header(report)}<main>{body}</main></body></html>"
    )
