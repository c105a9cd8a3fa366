"""Views over published runs: the site x area matrix per night, a scenario's trend, the scenarios.

Each is one query over the rows taken out of the documents at publication (run_areas,
run_scenarios, run_figures) joined to the runs the caller reaches (``Principal.owns``);
no document is read.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import to_naive_utc, utcnow
from runner.server.errors import Invalid
from runner.server.lifecycle import chunks
from runner.server.services.runs import AREA_KEYS, date_range, visible_sites

R, A, S, F = t.runs.c, t.run_areas.c, t.run_scenarios.c, t.run_figures.c
DEFAULT_NIGHTS = 14
MAX_NIGHTS = 92
#: most runs one trend shows
MAX_TREND_RUNS = 1000
COUNTS = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "total")


def matrix(
    conn: Connection,
    who: Principal,
    *,
    site_id: int | None = None,
    location: str | None = None,
    after: datetime | None = None,
    before: datetime | None = None,
) -> dict[str, Any]:
    """Per row (site and location), night (the UTC date a run started) and area: the last run
    that covered the area that night, its counts and its reasons."""
    end = to_naive_utc(before) if before is not None else utcnow()
    start = to_naive_utc(after) if after is not None else _midnight(end) - timedelta(days=DEFAULT_NIGHTS - 1)
    where = [who.owns(t.runs), *date_range(start, end)]
    if end - start > timedelta(days=MAX_NIGHTS):
        raise Invalid.at(["query", "after"], f"at most {MAX_NIGHTS} nights at once")
    if site_id is not None:
        where.append(R.site_id == site_id)
    if location:
        where.append(R.location == location)
    stmt = (
        select(
            R.id,
            R.run_id,
            R.kind,
            R.site_id,
            R.location,
            R.started_at,
            R.commit,
            *(A[k] for k in AREA_KEYS),
            A.reasons,
        )
        .join_from(t.runs, t.run_areas, A.run_id == R.id)
        .where(*where)
        .order_by(R.started_at.desc(), R.id.desc())
    )
    cells: dict[tuple[int, str, date, str], dict[str, Any]] = {}
    for row in conn.execute(stmt):
        run_pk, run_id, kind, site, loc, started, commit, *rest = row
        area = dict(zip(AREA_KEYS, rest[: len(AREA_KEYS)], strict=True))
        reasons: list[dict[str, Any]] = rest[len(AREA_KEYS)] or []
        key = (int(site), str(loc), started.date(), str(area["area"]))
        if key in cells:
            continue  # an earlier run of the same night
        listed = sum(int(r["count"]) for r in reasons)
        cells[key] = {
            **area,
            "site_id": site,
            "location": loc,
            "night": started.date(),
            "run": run_pk,
            "run_id": run_id,
            "kind": kind,
            "started_at": started,
            "commit": commit,
            "reasons": reasons,
            "more_reasons": max(0, area["failed"] + area["error"] + area["skipped"] - listed),
        }
    names = visible_sites(conn, who, [site for site, _, _, _ in cells])
    rows = sorted({(site, loc) for site, loc, _, _ in cells}, key=lambda r: (names.get(r[0], ""), r[1]))
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return {
        "after": start,
        "before": end,
        "nights": [last - timedelta(days=i) for i in range((last - first).days + 1)],
        "rows": [{"site_id": site, "site_name": names.get(site, ""), "location": loc} for site, loc in rows],
        "areas": sorted({area for _, _, _, area in cells}),
        "cells": list(cells.values()),
    }


def trend(
    conn: Connection,
    who: Principal,
    *,
    scenario: str,
    figures: list[str] | None = None,
    site_id: int | None = None,
    location: str | None = None,
    after: datetime | None = None,
    before: datetime | None = None,
    limit: int = MAX_TREND_RUNS,
) -> dict[str, Any]:
    """The last ``limit`` runs of a scenario (by its key) and their figures, oldest first."""
    where = [who.owns(t.runs), S.key == scenario, *date_range(after, before)]
    if site_id is not None:
        where.append(R.site_id == site_id)
    if location:
        where.append(R.location == location)
    stmt = (
        select(
            R.id,
            R.run_id,
            R.site_id,
            R.location,
            R.machine,
            R.commit,
            R.load,
            R.started_at,
            S.name,
            S.command,
            S.description,
            S.parameters,
        )
        .join_from(t.runs, t.run_scenarios, S.run_id == R.id)
        .where(*where)
        .order_by(R.started_at.desc(), R.id.desc())
        .limit(limit)
    )
    found = list(conn.execute(stmt))
    if not found:
        return {"scenario": None, "figure_info": {}, "points": []}
    newest = found[0]
    points: dict[int, dict[str, Any]] = {}
    for row in reversed(found):
        run_pk, run_id, site, loc, machine, commit, load, started = row[:8]
        points[run_pk] = {
            "run": run_pk,
            "run_id": run_id,
            "site_id": site,
            "location": loc,
            "machine": machine,
            "commit": commit,
            "load": load,
            "started_at": started,
            "figures": {},
        }
    info: dict[str, dict[str, Any]] = {}
    for part in chunks(list(points)):
        cond = [F.run_id.in_(part), F.scenario == newest.name]
        if figures:
            cond.append(F.figure.in_(figures))
        stmt_f = select(F.run_id, F.figure, F.median, F.min, F.max, F.unit, F.better, F.aim, F.description)
        for run_pk, figure, median, lo, hi, unit, better, aim, description in conn.execute(
            stmt_f.where(*cond)
        ):
            points[run_pk]["figures"][figure] = {"median": median, "min": lo, "max": hi}
            if run_pk == newest.id or figure not in info:
                info[figure] = {"unit": unit, "better": better, "aim": aim, "description": description}
    return {
        "scenario": {
            "key": scenario,
            "command": newest.command,
            "name": newest.name,
            "description": newest.description,
            "parameters": newest.parameters,
        },
        "figure_info": info,
        "points": list(points.values()),
    }


def scenarios(
    conn: Connection,
    who: Principal,
    *,
    site_id: int | None = None,
    location: str | None = None,
    after: datetime | None = None,
    before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every benchmark scenario published (by key), newest first, with how often and where."""
    where = [who.owns(t.runs), *date_range(after, before)]
    if site_id is not None:
        where.append(R.site_id == site_id)
    if location:
        where.append(R.location == location)
    stmt = (
        select(S.key, S.command, S.name, S.description, S.parameters, R.started_at, R.location, R.site_id)
        .join_from(t.runs, t.run_scenarios, S.run_id == R.id)
        .where(*where)
        .order_by(R.started_at.desc(), R.id.desc())
    )
    out: dict[str, dict[str, Any]] = {}
    for key, command, name, description, parameters, started, loc, site in conn.execute(stmt):
        seen = out.get(key)
        if seen is None:
            out[key] = {
                "key": key,
                "command": command,
                "name": name,
                "description": description,
                "parameters": parameters,
                "runs": 1,
                "last_started_at": started,
                "locations": [loc],
                "site_ids": [site],
            }
            continue
        seen["runs"] += 1
        if loc not in seen["locations"]:
            seen["locations"].append(loc)
        if site not in seen["site_ids"]:
            seen["site_ids"].append(site)
    return list(out.values())


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
