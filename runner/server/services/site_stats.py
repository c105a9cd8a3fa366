"""Site cards: per site, whether its agent is alive, its jobs by state, its allocations
and how many of their nodes running jobs use. Four grouped queries for all of a user's
sites at once, whatever the number of jobs (``GET /stats/sites``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Float, cast, func, select

from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.states import BatchJobState, JobState

#: The site agent heartbeats every 30 s (runner/site/heartbeat.py, HEARTBEAT_SEC): an
#: agent is alive while its last heartbeat is at most three periods old.
AGENT_ALIVE_SEC = 90.0

_QUEUED = (BatchJobState.QUEUED.value, BatchJobState.PENDING_SUBMISSION.value)
_RUNNING = BatchJobState.RUNNING.value


def job_weight() -> Any:
    """The nodes one job occupies while it runs: num_nodes / node_packing_count."""
    j = t.jobs.c
    return cast(j.num_nodes, Float) / cast(j.node_packing_count, Float)


def site_stats(conn: Connection, who: Principal, now: datetime) -> list[dict[str, Any]]:
    s, j, b = t.sites.c, t.jobs.c, t.batch_jobs.c
    sites = conn.execute(
        select(s.id, s.name, s.hostname, s.last_heartbeat).where(who.owns(t.sites)).order_by(s.id)
    ).all()
    if not sites:
        return []
    # A site's jobs are its owner's: by site id the counts come from the (site_id, state,
    # session_id) index alone, without reading a million rows of the table.
    mine = [row[0] for row in sites]
    jobs: dict[int, dict[str, int]] = {}
    for site_id, state, n in conn.execute(
        select(j.site_id, j.state, func.count()).where(j.site_id.in_(mine)).group_by(j.site_id, j.state)
    ):
        jobs.setdefault(site_id, {})[state] = n
    busy: dict[int, float] = dict(
        conn.execute(
            select(j.site_id, func.sum(job_weight()))
            .where(j.site_id.in_(mine), j.state == JobState.RUNNING.value)
            .group_by(j.site_id)
        ).all()
    )
    queued: dict[int, int] = {}
    running: dict[int, int] = {}
    nodes: dict[int, int] = {}
    for site_id, state, n, num_nodes in conn.execute(
        select(b.site_id, b.state, func.count(), func.sum(b.num_nodes))
        .where(who.owns(t.batch_jobs), b.state.in_([*_QUEUED, _RUNNING]))
        .group_by(b.site_id, b.state)
    ):
        if state == _RUNNING:
            running[site_id] = n
            nodes[site_id] = int(num_nodes or 0)
        else:
            queued[site_id] = queued.get(site_id, 0) + n
    alive_after = now - timedelta(seconds=AGENT_ALIVE_SEC)
    out = []
    for site_id, name, hostname, heartbeat in sites:
        used = float(busy.get(site_id) or 0.0)
        total = nodes.get(site_id, 0)
        out.append(
            {
                "site_id": site_id,
                "name": name,
                "hostname": hostname,
                "last_heartbeat": heartbeat,
                "agent_alive": heartbeat is not None and heartbeat >= alive_after,
                "agent_alive_sec": AGENT_ALIVE_SEC,
                "jobs": jobs.get(site_id, {}),
                "batch_jobs_queued": queued.get(site_id, 0),
                "batch_jobs_running": running.get(site_id, 0),
                "nodes_total": total,
                "nodes_busy": round(used, 3),
                "nodes_free": round(max(0.0, total - used), 3),
            }
        )
    return out
