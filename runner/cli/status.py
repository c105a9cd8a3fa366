"""``tolu status``: the one-screen overview — server, sites and agents, jobs per state,
allocations, launchers, DAG runs and the latest failures with their reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from runner.cli._common import (
    ToluCommand,
    ago,
    echo,
    get_client,
    json_option,
    noun,
    print_json,
    show_or_watch,
    watch_options,
)
from runner.client import Client
from runner.client.config import config_path
from runner.states import BATCH_FINAL, JobState

#: failed jobs shown (the newest).
FAILURES = 5
#: DAG runs shown (the newest).
RUNS = 3


def overview(client: Client) -> dict[str, Any]:
    """Everything ``tolu status`` shows, as plain data."""
    health = client.health()
    me = client.me()
    sites = client.sites.filter()
    counts = client.jobs.counts()
    batch_jobs = [b for b in client.batch_jobs.filter() if b.state not in BATCH_FINAL]
    sessions = client.sessions.filter()
    runs = client.dags.runs(limit=RUNS)
    failed = client.jobs.page(state=[JobState.FAILED], ordering="-updated_at", limit=FAILURES)
    reasons = client.jobs.explain(failed.results)
    return {
        "server": {"url": client.url, **health.model_dump(mode="json")},
        "user": me.username,
        "sites": [
            {"id": s.id, "name": s.name, "host": s.hostname, "agent_heartbeat": s.last_heartbeat}
            for s in sites
        ],
        "jobs": {s.value: n for s, n in counts.items()},
        "batch_jobs": [
            {"id": b.id, "site_id": b.site_id, "state": b.state.value, "nodes": b.num_nodes}
            for b in batch_jobs
        ],
        "sessions": [{"id": s.id, "site_id": s.site_id, "heartbeat": s.heartbeat} for s in sessions],
        "dag_runs": [
            {
                "id": r.id,
                "dag": r.dag_name,
                "version": r.version,
                "instances": r.instances,
                "outcome": {k.value: v for k, v in client.dags.status(r).instances.items()},
            }
            for r in runs
        ],
        "failures": {
            "count": failed.count,
            "latest": [str(reasons[j.id]) for j in failed.results if j.id in reasons],
        },
    }


def _agent(heartbeat: datetime | None) -> str:
    return f"agent seen {ago(heartbeat)}" if heartbeat else "no agent seen yet"


def render(data: dict[str, Any]) -> str:
    server = data["server"]
    lines = [
        f"server    {server['url']} (tolu {server['version']}, {server['database']}, "
        f"schema {server['schema_revision']}) as {data['user']}"
    ]
    sites = data["sites"]
    shown = ", ".join(f"{s['name']} ({_agent(s['agent_heartbeat'])})" for s in sites[:6])
    lines.append(f"sites     {len(sites)}" + (f": {shown}" if sites else " (make one: tolu site init DIR)"))
    jobs = data["jobs"]
    total = sum(jobs.values())
    per_state = ", ".join(f"{s} {jobs[s.value]}" for s in JobState if jobs.get(s.value))
    lines.append(f"jobs      {total}" + (f": {per_state}" if total else ""))
    bjs = data["batch_jobs"]
    queued = sum(1 for b in bjs if b["state"] != "running")
    running = [b for b in bjs if b["state"] == "running"]
    lines.append(
        f"queue     {len(running)} running ({sum(b['nodes'] for b in running)} nodes), {queued} waiting"
    )
    sessions = data["sessions"]
    beat = f" (latest heartbeat {ago(max(s['heartbeat'] for s in sessions))})" if sessions else ""
    lines.append(f"launchers {noun(len(sessions), 'session')}{beat}")
    for r in data["dag_runs"]:
        outcome = ", ".join(f"{n} {k}" for k, n in sorted(r["outcome"].items()))
        lines.append(
            f"dag run   {r['id']}: {r['dag']} v{r['version']}, {noun(r['instances'], 'instance')}: {outcome}"
        )
    failures = data["failures"]
    lines.append(f"failed    {failures['count']}" + (" (newest first):" if failures["latest"] else ""))
    lines += [f"  {line}" for line in failures["latest"]]
    return "\n".join(lines)


@click.command(cls=ToluCommand)
@json_option()
@watch_options("the overview")
def status(as_json: bool, watch: bool, interval: float) -> None:
    """One screen: server, sites, jobs, allocations, launchers, DAG runs, failures.

    The server and your account, your sites and when their agents were last seen, jobs
    per state, allocations, launcher sessions, the latest DAG runs, and the newest
    failed jobs with why they failed.

    \b
    Examples:
      tolu status
      tolu status --watch
    """
    client = get_client()
    if as_json:
        print_json(overview(client))
        return
    show_or_watch(lambda: render(overview(client)), watch, interval)


@click.command(cls=ToluCommand)
@json_option()
def whoami(as_json: bool) -> None:
    """Who you are logged in as, and at which server (asks the server)."""
    client = get_client()
    me = client.me()
    path = config_path()
    if as_json:
        print_json({"username": me.username, "url": client.url, "credentials": str(path)})
        return
    echo(f"{me.username} at {client.url} (credentials: {path})")


@click.command(cls=ToluCommand)
@json_option('print {"username", "url", "removed"}')
def logout(as_json: bool) -> None:
    """Forget the saved login (removes $TOLU_CONFIG or ~/.config/tolu/credentials.yaml)."""
    from runner.client import ConfigError
    from runner.client.config import read_config

    path = config_path()
    username = url = None
    try:
        creds = read_config(path)
        username, url = creds.username, creds.url
    except ConfigError:
        pass
    removed = path.exists()
    if removed:
        path.unlink()
    if as_json:
        print_json({"username": username, "url": url, "removed": str(path) if removed else None})
    elif not removed:
        echo(f"not logged in (no {path})")
    else:
        who = f"{username} at {url}" if username else "the saved login"
        echo(f"Logged out {who} (removed {path})")
