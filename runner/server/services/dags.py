"""DAG prototypes: define a parameterised DAG once, instantiate it many times.

A DAG (``dags`` table) is a list of nodes — each one job per instance: an app by name,
its parameters, its parents among the nodes — and the DAG's own parameters. Defining
a DAG under an existing name stores the next version unless nothing changed. A run
(``dag_runs``) creates every instance's jobs in one transaction through job_create's
steps, all or nothing, each job tagged ``dag_run``, ``dag_instance`` and ``dag_node``;
a run or one of its instances is then listed, watched and killed by those tags. Each
instance's jobs depend only on each other, so a failure spreads inside its instance
only (the life cycle fails the children of a failed parent).

String values of a node may hold ``{name}`` placeholders (models.DagNode), filled per
instance from its parameters over the DAG's defaults and the builtins ``instance``,
``run`` and ``dag``.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, exists, func, select

from runner.models import (
    DAG_BUILTINS,
    DAG_INSTANCE_TAG,
    DAG_NODE_TAG,
    DAG_RUN_TAG,
    MAX_BULK,
    MAX_RUN_JOBS,
    DagCreate,
    DagInstanceState,
    DagNode,
    DagRunCreate,
    JobCreate,
    JobUpdate,
    TransferItemCreate,
    describe_parameters,
)
from runner.server import bulk, rows
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import ANALYZE_AFTER_ROWS, Database, refresh_statistics, utcnow
from runner.server.errors import Invalid, Loc, NotFound
from runner.server.services import app_params, job_create, jobs
from runner.server.services.common import count, ensure_owned
from runner.states import FINAL, JobState

S = JobState
_FORMATTER = string.Formatter()
DAG_KEYS = ["id", "name", "version", "site_id", "description", "parameters", "nodes", "created_at"]
RUN_KEYS = ["id", "dag_id", "dag_name", "version", "site_id", "instances", "jobs", "tags", "created_at"]


# ---------------------------------------------------------------- placeholders


def _fields(text: str) -> list[tuple[str, str]]:
    """(literal, name) pairs of a template string; ValueError if it is malformed."""
    return [
        (lit, name or "") for lit, name, _spec, _conv in _FORMATTER.parse(text) if name is not None or lit
    ]


def placeholders(value: Any) -> list[str]:
    """Every ``{name}`` used in ``value`` (strings inside lists and dicts included)."""
    if isinstance(value, str):
        return [name for _lit, name in _fields(value) if name]
    if isinstance(value, list):
        return [n for v in value for n in placeholders(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in placeholders(v)]
    return []


def fill(value: Any, params: Mapping[str, Any]) -> Any:
    """``value`` with its placeholders filled; ``"{name}"`` alone keeps the value's type."""
    if isinstance(value, str):
        if "{" not in value and "}" not in value:
            return value
        parsed = list(_FORMATTER.parse(value))
        if len(parsed) == 1 and not parsed[0][0] and parsed[0][1] and not parsed[0][2] and not parsed[0][3]:
            return params[parsed[0][1]]
        return value.format_map(params)
    if isinstance(value, list):
        return [fill(v, params) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, params) for k, v in value.items()}
    return value


def _node_values(node: DagNode) -> list[tuple[Loc, Any]]:
    """The templated values of a node, each with its path under the node."""
    out: list[tuple[Loc, Any]] = [(["parameters", k], v) for k, v in node.parameters.items()]
    out += [(["tags", k], v) for k, v in node.tags.items()]
    out += [(["environment", k], v) for k, v in node.environment.items()]
    if node.workdir is not None:
        out.append((["workdir"], node.workdir))
    for j, x in enumerate(node.transfers):
        out += [(["transfers", j, "source"], x.source), (["transfers", j, "destination"], x.destination)]
    return out


# ---------------------------------------------------------------- define


def _apps_by_name(conn: Connection, who: Principal, site_id: int) -> dict[str, Any]:
    a = t.apps.c
    stmt = select(a.id, a.name, a.parameters, a.free_parameters).where(a.site_id == site_id, who.owns(t.apps))
    return {row.name: row for row in conn.execute(stmt)}


def validate(conn: Connection, who: Principal, body: DagCreate) -> None:
    """Raise Invalid at the first thing that would make an instance fail to be created."""
    clash = sorted(set(body.parameters) & set(DAG_BUILTINS))
    if clash:
        raise Invalid.at(
            ["body", "parameters", clash[0]], f"{clash[0]!r} is a builtin placeholder; rename it"
        )
    names: dict[str, int] = {}
    for i, node in enumerate(body.nodes):
        if node.name in names:
            raise Invalid.at(
                ["body", "nodes", i, "name"], f"node {node.name!r} is already node {names[node.name]}"
            )
        names[node.name] = i
    apps = _apps_by_name(conn, who, body.site_id)
    known = set(body.parameters) | set(DAG_BUILTINS)
    for i, node in enumerate(body.nodes):
        at: list[str | int] = ["body", "nodes", i]
        for j, parent in enumerate(node.parents):
            if parent not in names:
                raise Invalid.at([*at, "parents", j], f"no node named {parent!r} in this DAG")
            if parent == node.name:
                raise Invalid.at([*at, "parents", j], f"node {parent!r} cannot be its own parent")
        app = apps.get(node.app)
        if app is None:
            have = ", ".join(sorted(apps)) or "none"
            raise Invalid.at(
                [*at, "app"], f"no app named {node.app!r} at site {body.site_id} (its apps: {have})"
            )
        app_params.check(
            app.name, app.parameters or {}, app.free_parameters, node.parameters, [*at, "parameters"]
        )
        for loc, value in _node_values(node):
            try:
                used = placeholders(value)
            except ValueError as exc:
                raise Invalid.at([*at, *loc], f"{value!r}: {exc} (write {{{{ and }}}} for braces)") from None
            unknown = [n for n in used if n not in known]
            if unknown:
                raise Invalid.at(
                    [*at, *loc],
                    f"placeholder {{{unknown[0]}}} is not a parameter of the DAG (its parameters: "
                    f"{describe_parameters(body.parameters)}; builtins: {', '.join(DAG_BUILTINS)})",
                )
    cycle = _cycle(body.nodes)
    if cycle:
        raise Invalid.at(["body", "nodes"], f"dependency cycle: {' -> '.join(cycle)}")


def _cycle(nodes: Sequence[DagNode]) -> list[str] | None:
    parents = {n.name: n.parents for n in nodes}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for p in parents[name]:
            if state.get(p) == 1:
                return [*path[path.index(p) :], name, p] if p in path else [name, p]
            if p not in state:
                found = visit(p, [*path, name])
                if found:
                    return found
        state[name] = 2
        return None

    for node in nodes:
        if node.name not in state:
            found = visit(node.name, [])
            if found:
                return found
    return None


def _stored(body: DagCreate) -> dict[str, Any]:
    return {
        "site_id": body.site_id,
        "description": body.description,
        "parameters": body.parameters,
        "nodes": [n.model_dump(mode="json", exclude_unset=False) for n in body.nodes],
    }


def define(conn: Connection, who: Principal, body: DagCreate) -> tuple[dict[str, Any], bool]:
    """Store ``body`` as the next version of its name (unless the latest is the same);
    the DAG as stored, and whether a version was added."""
    ensure_owned(conn, t.sites, body.site_id, who, "site")
    validate(conn, who, body)
    d = t.dags.c
    latest = conn.execute(
        select(*[d[k] for k in DAG_KEYS])
        .where(d.owner_id == who.user_id, d.name == body.name)
        .order_by(d.version.desc())
        .limit(1)
    ).first()
    values = _stored(body)
    if latest is not None:
        current = rows.one(DAG_KEYS, latest)
        if all(current[k] == v for k, v in values.items()):
            return current, False
    version = 1 if latest is None else latest.version + 1
    dag_id = conn.execute(
        t.dags.insert().values(
            owner_id=who.user_id, name=body.name, version=version, created_at=utcnow(), **values
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return get(conn, who, dag_id), True


def get(conn: Connection, who: Principal, dag_id: int) -> dict[str, Any]:
    d = t.dags.c
    row = conn.execute(select(*[d[k] for k in DAG_KEYS]).where(d.id == dag_id, who.owns(t.dags))).first()
    if row is None:
        raise NotFound(f"DAG {dag_id} not found")
    return rows.one(DAG_KEYS, row)


def filter(
    conn: Connection,
    who: Principal,
    *,
    name: str | None,
    site_id: int | None,
    all_versions: bool,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The user's DAGs, newest first; only the latest version of each name unless ``all_versions``."""
    d = t.dags.c
    where = [who.owns(t.dags)]
    if name is not None:
        where.append(d.name == name)
    if site_id is not None:
        where.append(d.site_id == site_id)
    if not all_versions:
        newer = t.dags.alias("newer")
        where.append(
            ~exists().where(
                newer.c.owner_id == d.owner_id, newer.c.name == d.name, newer.c.version > d.version
            )
        )
    total = count(conn, t.dags, where)
    stmt = select(*[d[k] for k in DAG_KEYS]).where(*where).order_by(d.id.desc()).limit(limit).offset(offset)
    return rows.page(total, rows.dicts(DAG_KEYS, conn.execute(stmt)))


def delete(conn: Connection, who: Principal, dag_id: int) -> None:
    """Delete one version of a DAG and its runs' records (their jobs stay)."""
    ensure_owned(conn, t.dags, dag_id, who, "DAG")
    conn.execute(t.dag_runs.delete().where(t.dag_runs.c.dag_id == dag_id))
    conn.execute(t.dags.delete().where(t.dags.c.id == dag_id))


# ---------------------------------------------------------------- run


def run(conn: Connection, db: Database, who: Principal, dag_id: int, body: DagRunCreate) -> dict[str, Any]:
    """Create every instance's jobs (one transaction, all or nothing); the run."""
    dag = get(conn, who, dag_id)
    nodes = [DagNode.model_validate(n) for n in dag["nodes"]]
    n_jobs = len(body.instances) * len(nodes)
    if n_jobs > MAX_RUN_JOBS:
        raise Invalid.at(
            ["body", "instances"],
            f"{len(body.instances)} instances x {len(nodes)} nodes = {n_jobs} jobs; "
            f"at most {MAX_RUN_JOBS} per run",
            "too_long",
        )
    for i, inst in enumerate(body.instances):
        app_params.check(
            dag["name"],
            dag["parameters"],
            False,
            inst.parameters,
            ["body", "instances", i, "parameters"],
            what="DAG",
        )
        jobs.check_tags(inst.tags, ["body", "instances", i, "tags"])
    jobs.check_tags(body.tags, ["body", "tags"])
    site_id = body.site_id if body.site_id is not None else dag["site_id"]
    ensure_owned(conn, t.sites, site_id, who, "site")
    apps = _apps_by_name(conn, who, site_id)
    missing = sorted({n.app for n in nodes} - set(apps))
    if missing:
        raise Invalid.at(
            ["body", "site_id"], f"site {site_id} has no app named {missing[0]!r} (the DAG needs it)"
        )
    run_id = conn.execute(
        t.dag_runs.insert().values(
            owner_id=who.user_id,
            dag_id=dag_id,
            site_id=site_id,
            instances=len(body.instances),
            jobs=n_jobs,
            parameters=[inst.parameters for inst in body.instances],
            tags=body.tags,
            created_at=utcnow(),
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    per_chunk = max(1, MAX_BULK // len(nodes))
    for start in range(0, len(body.instances), per_chunk):
        items: list[JobCreate] = []
        for index in range(start, min(start + per_chunk, len(body.instances))):
            inst = body.instances[index]
            tags = {**body.tags, **inst.tags}
            for node in nodes:
                try:
                    items.append(_job(dag, node, apps[node.app].id, run_id, index, inst.parameters, tags))
                except (KeyError, ValueError, IndexError, TypeError) as exc:  # a value that cannot be filled
                    raise Invalid.at(
                        ["body", "instances", index, "nodes", node.name],
                        f"cannot fill node {node.name!r}: {_one_line(exc)}",
                    ) from None
        try:
            job_create.bulk_create(conn, db, who, items)
        except Invalid as exc:
            raise _relocated(exc, start, nodes) from None
    if n_jobs >= ANALYZE_AFTER_ROWS and not bulk.is_sqlite(conn):
        # PostgreSQL plans from statistics its autovacuum refreshes a minute or so later:
        # right after tens of thousands of rows land in tables it last saw small, it
        # loops over a sequential scan (the run's status took 22 s at 20,000 jobs, 0.2 s
        # at 10,000). The refresh counts this transaction's own new rows.
        refresh_statistics(conn, "jobs", "job_tags", "job_parents")
    return get_run(conn, who, run_id)


def _job(
    dag: Mapping[str, Any],
    node: DagNode,
    app_id: int,
    run_id: int,
    index: int,
    given: Mapping[str, Any],
    tags: Mapping[str, str],
) -> JobCreate:
    values = {**dag["parameters"], **given, "instance": index, "run": run_id, "dag": dag["name"]}
    job_tags = {k: str(v) for k, v in fill(node.tags, values).items()}
    job_tags.update(tags)
    job_tags.update({DAG_RUN_TAG: str(run_id), DAG_INSTANCE_TAG: str(index), DAG_NODE_TAG: node.name})
    fields: dict[str, Any] = {
        "app_id": app_id,
        "key": f"{index}:{node.name}",
        "parents": [f"{index}:{p}" for p in node.parents],
        "parameters": fill(node.parameters, values),
        "tags": job_tags,
        "environment": {k: str(v) for k, v in fill(node.environment, values).items()},
        "workdir": str(fill(node.workdir, values))
        if node.workdir
        else f"dags/{dag['name']}/{run_id}/{index}/{node.name}",
        "resources": node.resources,
        "retry_limit": node.retry_limit,
    }
    if node.transfers:
        fields["transfers"] = [
            TransferItemCreate.model_validate(
                {**x.model_dump(), **fill({"source": x.source, "destination": x.destination}, values)}
            )
            for x in node.transfers
        ]
    # the node was validated when the DAG was defined: skip validating each job again
    return JobCreate.model_construct(**fields)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return str(exc.errors()[0]["msg"])
    if isinstance(exc, KeyError):
        return f"no value for {{{exc.args[0]}}}"
    return " ".join(str(exc).split())


def _relocated(exc: Invalid, first_instance: int, nodes: Sequence[DagNode]) -> Invalid:
    """job_create's error (``body.<k>.<field>``) at its instance and node instead."""
    out = []
    for err in exc.errors:
        loc = list(err["loc"])
        if len(loc) >= 2 and loc[0] == "body" and isinstance(loc[1], int):
            k = loc[1]
            loc = [
                "body",
                "instances",
                first_instance + k // len(nodes),
                "nodes",
                nodes[k % len(nodes)].name,
                *loc[2:],
            ]
        out.append({**err, "loc": loc})
    return Invalid(out)


# ---------------------------------------------------------------- runs


def _run_select() -> Any:
    r, d = t.dag_runs.c, t.dags.c
    return select(
        r.id,
        r.dag_id,
        d.name.label("dag_name"),
        d.version,
        r.site_id,
        r.instances,
        r.jobs,
        r.tags,
        r.created_at,
    ).join_from(t.dag_runs, t.dags, r.dag_id == d.id)


def get_run(conn: Connection, who: Principal, run_id: int) -> dict[str, Any]:
    r = t.dag_runs.c
    row = conn.execute(_run_select().where(r.id == run_id, who.owns(t.dag_runs))).first()
    if row is None:
        raise NotFound(f"DAG run {run_id} not found")
    return rows.one(RUN_KEYS, row)


def runs(
    conn: Connection, who: Principal, *, dag_id: int | None, name: str | None, limit: int, offset: int
) -> dict[str, Any]:
    """The user's runs, newest first."""
    r, d = t.dag_runs.c, t.dags.c
    where = [who.owns(t.dag_runs)]
    if dag_id is not None:
        where.append(r.dag_id == dag_id)
    if name is not None:
        where.append(r.dag_id.in_(select(d.id).where(who.owns(t.dags), d.name == name)))
    total = count(conn, t.dag_runs, where)
    stmt = _run_select().where(*where).order_by(r.id.desc()).limit(limit).offset(offset)
    return rows.page(total, rows.dicts(RUN_KEYS, conn.execute(stmt)))


def _instance_state(states: Mapping[str, int]) -> DagInstanceState:
    if states.get(S.FAILED.value):
        return DagInstanceState.FAILED
    if states.get(S.KILLED.value):
        return DagInstanceState.KILLED
    if set(states) == {S.JOB_FINISHED.value}:
        return DagInstanceState.FINISHED
    started = {
        S.RUNNING,
        S.RUN_DONE,
        S.RUN_ERROR,
        S.RUN_TIMEOUT,
        S.RESTART_READY,
        S.POSTPROCESSED,
        S.STAGED_OUT,
    }
    if any(states.get(s.value) for s in started) or states.get(S.JOB_FINISHED.value):
        return DagInstanceState.RUNNING
    return DagInstanceState.WAITING


def status(
    conn: Connection, who: Principal, run_id: int, *, detail: bool, instance: int | None
) -> dict[str, Any]:
    """Jobs per state, instances per instance state, and (``detail`` or one ``instance``) each instance."""
    found = get_run(conn, who, run_id)
    tg, j = t.job_tags.alias("instance_tag"), t.jobs.c
    stmt = (
        select(tg.c.value, j.state, func.count())
        .join_from(t.jobs, tg, (tg.c.job_id == j.id) & (tg.c.key == DAG_INSTANCE_TAG))
        .where(who.owns(t.jobs), jobs.tag_match(DAG_RUN_TAG, str(run_id)))
        .group_by(tg.c.value, j.state)
    )
    if instance is not None:
        stmt = stmt.where(tg.c.value == str(instance))
    per: dict[int, dict[str, int]] = defaultdict(dict)
    for value, state, n in conn.execute(stmt):
        per[int(value)][state] = n
    totals: dict[str, int] = defaultdict(int)
    outcome: dict[str, int] = defaultdict(int)
    shown = []
    want = detail or instance is not None
    parameters = _run_parameters(conn, run_id) if want else []
    for index in sorted(per):
        states = per[index]
        for state, n in states.items():
            totals[state] += n
        kind = _instance_state(states)
        outcome[kind.value] += 1
        if want:
            shown.append(
                {
                    "index": index,
                    "state": kind.value,
                    "jobs": states,
                    "parameters": parameters[index] if index < len(parameters) else {},
                }
            )
    if instance is not None and not per:
        raise NotFound(f"DAG run {run_id} has no instance {instance} (it has {found['instances']})")
    return {"run": found, "jobs": dict(totals), "instances": dict(outcome), "detail": shown if want else None}


def _run_parameters(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    value = conn.execute(select(t.dag_runs.c.parameters).where(t.dag_runs.c.id == run_id)).scalar()
    return list(value or [])


def kill(conn: Connection, who: Principal, run_id: int, *, instance: int | None) -> int:
    """Move every unfinished job of the run (or of one instance) to KILLED; how many."""
    get_run(conn, who, run_id)
    j = t.jobs.c
    where = [
        who.owns(t.jobs),
        jobs.tag_match(DAG_RUN_TAG, str(run_id)),
        j.state.notin_([s.value for s in FINAL]),
    ]
    if instance is not None:
        where.append(jobs.tag_match(DAG_INSTANCE_TAG, str(instance)))
    ids = list(conn.execute(select(j.id).where(*where).order_by(j.id)).scalars())
    what = f"DAG run {run_id}" + (f" instance {instance}" if instance is not None else "")
    for start in range(0, len(ids), MAX_BULK):
        part = ids[start : start + MAX_BULK]
        updates = [JobUpdate(id=i, state=S.KILLED, state_data={"reason": f"{what} killed"}) for i in part]
        jobs.bulk_update(conn, who, updates, returning=False)
    return len(ids)
