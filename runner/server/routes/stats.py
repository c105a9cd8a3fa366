"""Aggregates for the web interface (and any script): site cards and histories.

Computed by the database per request (grouped queries), so a page never downloads
the jobs or Events it summarizes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from runner import models
from runner.server.db import utcnow
from runner.server.errors import json_response
from runner.server.routes.deps import Db, Who
from runner.server.services import history, history_rollup, site_stats

router = APIRouter(prefix="/stats", tags=["statistics"])


@router.get("/sites", response_model=list[models.SiteStats])
def sites(who: Who, db: Db) -> Response:
    """Per site of yours: agent alive (last heartbeat), jobs by state, batch jobs queued and
    running, nodes of running allocations busy and free."""
    with db.read() as conn:
        return json_response(site_stats.site_stats(conn, who, utcnow()))


@router.get("/history", response_model=models.History)
def get_history(who: Who, db: Db, flt: Annotated[models.HistoryFilter, Query()]) -> Response:
    """Jobs finished and failed per interval, running jobs, busy and available nodes
    (time-averaged per interval), from your Events. With ``batch_job_id``: that
    allocation's utilization over its lifetime."""
    if history.rolled_up(flt):
        history_rollup.catch_up(db)
    with db.read() as conn:
        return json_response(history.history(conn, who, flt, utcnow()))
