"""``tolu job``: create, list, modify and remove jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from pydantic import ValidationError

from runner.cli._common import (
    StateType,
    ToluGroup,
    echo,
    fail,
    format_tags,
    format_time,
    get_client,
    parse_pairs,
    print_json,
    print_table,
    resolve_app,
    resolve_site,
    site_option,
)
from runner.client import Client, InvalidRequest
from runner.models import JobCreate, JobUpdate, Resources, Site, TransferDirection, TransferItemCreate
from runner.states import JobState

_state_type = StateType()


@click.group(cls=ToluGroup)
def job() -> None:
    """Jobs: one run of an app with parameters, resources, tags and parents.

    \b
    Examples:
      tolu job create --app hello --param name=world -n 100 --tag run=a
      tolu job ls --tag run=a --by-state
      tolu job show 12
      tolu job modify 12 13 --state KILLED
      tolu job rm --tag run=a
    """


def _transfers(values: Sequence[str], direction: TransferDirection, option: str) -> list[TransferItemCreate]:
    out = []
    example = "local:/data/in.txt=in.txt" if direction == TransferDirection.IN else "out.h5=local:/results/"
    for item in values:
        src, eq, dest = item.partition("=")
        if not eq or not src or not dest:
            fail(f"{option} {item!r}: expected SOURCE=DESTINATION (e.g. {example})")
        try:
            out.append(TransferItemCreate(direction=direction, source=src, destination=dest))
        except ValidationError as exc:
            fail(f"{option} {item!r}: {exc.errors()[0]['msg']}")
    return out


#: the option a person used for each field of a job (for errors the server reports).
_OPTION_OF = {
    "parameters": "--param",
    "tags": "--tag",
    "parents": "--parent",
    "transfers": "--stage-in/--stage-out",
}


def _refused(exc: InvalidRequest) -> str:
    """A refused create in the words of the options (the server numbers the jobs of the request)."""
    if not exc.errors:
        return str(exc)
    first = exc.errors[0]
    loc = list(first.loc)
    field = loc[2] if len(loc) > 2 and loc[0] == "body" else None
    option = _OPTION_OF.get(str(field))
    if option is None:
        return str(exc)
    return f"{option}: {first.msg}"


def _ids_text(ids: Sequence[int]) -> str:
    if not ids:
        return ""
    if list(ids) == list(range(ids[0], ids[0] + len(ids))) and len(ids) > 2:
        return f"{ids[0]}-{ids[-1]}"
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")


@job.command()
@click.option("--app", "app_name", required=True, help="app name (or id)")
@site_option()
@click.option("-n", "--count", default=1, show_default=True, type=click.IntRange(1), help="how many copies")
@click.option(
    "--param", "params", multiple=True, metavar="K=V", help="parameter (value parsed as JSON if it can)"
)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="tag (string key and value)")
@click.option("--nodes", "num_nodes", type=click.IntRange(1), help="nodes per job [default: the app's]")
@click.option("--ranks-per-node", type=click.IntRange(1), help="MPI ranks per node")
@click.option("--threads-per-rank", type=click.IntRange(1), help="threads per rank")
@click.option("--gpus-per-rank", type=click.IntRange(0), help="GPUs per rank")
@click.option("--node-packing-count", type=click.IntRange(1), help="how many such jobs may share a node")
@click.option("--wall-time-min", type=click.FloatRange(0), help="wall-time limit in minutes (0: none)")
@click.option("--parent", "parents", multiple=True, type=int, metavar="ID", help="parent job id (repeatable)")
@click.option("--retry-limit", type=click.IntRange(0), help="retries after errors/timeouts [default: 3]")
@click.option("--workdir", help="workdir under SITE/data (default: <app>/<job id>; -n > 1 adds /<i>)")
@click.option(
    "--stage-in", multiple=True, metavar="SRC=DEST", help="stage in LOCATION:PATH to a workdir path"
)
@click.option(
    "--stage-out", multiple=True, metavar="SRC=DEST", help="stage out a workdir path to LOCATION:PATH"
)
@click.option("-q", "--quiet", is_flag=True, help="print only the new job ids, one per line")
def create(
    app_name: str,
    site: str | None,
    count: int,
    params: tuple[str, ...],
    tags: tuple[str, ...],
    num_nodes: int | None,
    ranks_per_node: int | None,
    threads_per_rank: int | None,
    gpus_per_rank: int | None,
    node_packing_count: int | None,
    wall_time_min: float | None,
    parents: tuple[int, ...],
    retry_limit: int | None,
    workdir: str | None,
    stage_in: tuple[str, ...],
    stage_out: tuple[str, ...],
    quiet: bool,
) -> None:
    """Create COUNT jobs of an app in one request.

    \b
    Examples:
      tolu job create --app hello --param name=world --tag run=a -n 1000
      P=$(tolu job create --app prep -q)
      tolu job create --app sim --parent $P --nodes 2 --ranks-per-node 4 --wall-time-min 30
      tolu job create --app sim --stage-in local:/data/in.h5=in.h5 --stage-out out.h5=local:/results/
    """
    client = get_client()
    site_obj = resolve_site(client, site) if site else None
    app = resolve_app(client, app_name, site_obj)
    given = {
        k: v
        for k, v in dict(
            num_nodes=num_nodes,
            ranks_per_node=ranks_per_node,
            threads_per_rank=threads_per_rank,
            gpus_per_rank=gpus_per_rank,
            node_packing_count=node_packing_count,
            wall_time_min=wall_time_min,
        ).items()
        if v is not None
    }
    resources = Resources.model_validate({**app.default_resources.model_dump(), **given}) if given else None
    base: dict[str, Any] = {
        "app_id": app.id,
        "parameters": parse_pairs(params, "--param", typed=True),
        "tags": parse_pairs(tags, "--tag"),
        "parents": list(parents),
        "transfers": _transfers(stage_in, TransferDirection.IN, "--stage-in")
        + _transfers(stage_out, TransferDirection.OUT, "--stage-out"),
    }
    if resources is not None:
        base["resources"] = resources
    if retry_limit is not None:
        base["retry_limit"] = retry_limit
    jobs = []
    for i in range(count):
        fields = dict(base)
        if workdir:
            fields["workdir"] = workdir if count == 1 else f"{workdir}/{i}"
        jobs.append(JobCreate.model_validate(fields))
    try:
        made = client.jobs.bulk_create(jobs)
    except InvalidRequest as exc:
        fail(_refused(exc))
    if quiet:
        for j in made:
            echo(str(j.id))
        return
    ids = [j.id for j in made]
    states = sorted({j.state.value for j in made})
    noun = "job" if len(made) == 1 else "jobs"
    echo(f"Created {len(made)} {noun} of app {app.name} (id {_ids_text(ids)}), state {', '.join(states)}")


def _filters(
    client: Client,
    *,
    ids: Sequence[int] = (),
    states: Sequence[str] = (),
    tags: Sequence[str] = (),
    app_name: str | None = None,
    site: str | None = None,
) -> tuple[dict[str, Any], Site | None]:
    site_obj = resolve_site(client, site) if site else None
    filters: dict[str, Any] = {
        "id": list(ids) or None,
        "state": [s.upper() for s in states] or None,
        "tags": parse_pairs(tags, "--tag") or None,
        "site_id": site_obj.id if site_obj else None,
        "app_id": resolve_app(client, app_name, site_obj).id if app_name else None,
    }
    return filters, site_obj


@job.command("ls")
@click.argument("ids", nargs=-1, type=int)
@click.option(
    "--state", "states", multiple=True, type=_state_type, help="only jobs in this state (repeatable)"
)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="only jobs with this tag (repeatable: all)")
@click.option("--app", "app_name", help="only jobs of this app (name or id)")
@site_option()
@click.option("--by-state", is_flag=True, help="print how many jobs are in each state")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0), help="rows to show (0: all)")
def ls(
    ids: tuple[int, ...],
    states: tuple[str, ...],
    tags: tuple[str, ...],
    app_name: str | None,
    site: str | None,
    by_state: bool,
    as_json: bool,
    limit: int,
) -> None:
    """List jobs: id, app, state, tags, nodes, updated (oldest first).

    \b
    Examples:
      tolu job ls --state RUNNING --tag run=a
      tolu job ls --by-state
      tolu job ls --app hello --json --limit 0
    """
    client = get_client()
    filters, _site = _filters(client, ids=ids, states=states, tags=tags, app_name=app_name, site=site)
    if by_state:
        counts = client.jobs.counts(**filters)
        rows = [(s.value, counts[s]) for s in JobState if counts.get(s)]
        if as_json:
            print_json({state: n for state, n in rows})
            return
        print_table(("state", "count"), [*rows, ("total", sum(counts.values()))])
        return
    page = client.jobs.page(**filters, ordering="id", limit=limit or 10_000)
    jobs = page.results if limit else client.jobs.filter(**filters)
    if as_json:
        print_json([j.model_dump(mode="json") for j in jobs])
        return
    names = {a.id: a.name for a in client.apps.filter()}
    rows2 = [
        (
            j.id,
            names.get(j.app_id, j.app_id),
            j.state.value,
            format_tags(j.tags),
            j.num_nodes,
            format_time(j.updated_at),
        )
        for j in jobs
    ]
    print_table(("id", "app", "state", "tags", "nodes", "updated"), rows2)
    if len(jobs) < page.count:
        echo(f"({len(jobs)} of {page.count} jobs shown; --limit 0 shows all)")


@job.command()
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="print JSON (the job and its events)")
def show(job_id: int, as_json: bool) -> None:
    """Show one job: its fields and its state history.

    \b
    Example:
      tolu job show 12
    """
    client = get_client()
    j = client.jobs.get(job_id)
    events = client.events.filter(job_id=job_id, ordering="id")
    if as_json:
        print_json({**j.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in events]})
        return
    app = client.apps.get(j.app_id)
    site = client.sites.get(j.site_id)
    fields = [
        ("id", j.id),
        ("app", f"{app.name} (id {app.id})"),
        ("site", f"{site.name} (id {site.id})"),
        ("state", j.state.value),
        ("parameters", ", ".join(f"{k}={v}" for k, v in j.parameters.items()) or "-"),
        ("tags", format_tags(j.tags) or "-"),
        ("parents", ", ".join(map(str, j.parents)) or "-"),
        (
            "resources",
            f"{j.num_nodes} nodes x {j.ranks_per_node} ranks x {j.threads_per_rank} threads, "
            f"{j.gpus_per_rank} gpus/rank, packing {j.node_packing_count}, "
            f"wall time {j.wall_time_min or 'none'} min",
        ),
        ("return code", "-" if j.return_code is None else j.return_code),
        ("retries", f"{j.retry_count} of {j.retry_limit}"),
        ("workdir", f"{site.path}/data/{j.workdir}"),
        ("created", format_time(j.created_at)),
        ("updated", format_time(j.updated_at)),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        echo(f"{key:<{width}}  {value}")
    echo("")
    print_table(
        ("time", "from", "to", "data"),
        [
            (
                format_time(e.timestamp),
                e.from_state.value if e.from_state else "-",
                e.to_state.value,
                ", ".join(f"{k}={v}" for k, v in e.data.items()),
            )
            for e in events
        ],
    )


@job.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--state", type=_state_type, help="move the jobs to this state (e.g. KILLED, RESTART_READY)")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="set a tag (others are kept)")
@click.option("--param", "params", multiple=True, metavar="K=V", help="set a parameter (others are kept)")
@click.option("--retry-limit", type=click.IntRange(0), help="new retry limit")
def modify(
    ids: tuple[int, ...],
    state: str | None,
    tags: tuple[str, ...],
    params: tuple[str, ...],
    retry_limit: int | None,
) -> None:
    """Change jobs by id, all or none (a forbidden state change changes nothing).

    \b
    Examples:
      tolu job modify 12 13 --state KILLED
      tolu job modify 12 --state RESTART_READY --retry-limit 5
      tolu job modify 12 --tag priority=high --param steps=200
    """
    if state is None and not tags and not params and retry_limit is None:
        fail("nothing to change: give --state, --tag, --param or --retry-limit")
    client = get_client()
    wanted = sorted(set(ids))
    jobs = {j.id: j for j in client.jobs.filter(id=wanted)}
    missing = [i for i in wanted if i not in jobs]
    if missing:
        fail(f"no such jobs: {', '.join(map(str, missing))} (nothing changed)")
    new_tags = parse_pairs(tags, "--tag")
    new_params = parse_pairs(params, "--param", typed=True)
    updates = []
    for i in wanted:
        fields: dict[str, Any] = {"id": i}
        if state is not None:
            fields["state"] = JobState(state.upper())
            fields["state_data"] = {"reason": "tolu job modify"}
        if new_tags:
            fields["tags"] = {**jobs[i].tags, **new_tags}
        if new_params:
            fields["parameters"] = {**jobs[i].parameters, **new_params}
        if retry_limit is not None:
            fields["retry_limit"] = retry_limit
        updates.append(JobUpdate.model_validate(fields))
    done = client.jobs.bulk_update(updates)
    noun = "job" if len(done) == 1 else "jobs"
    states = sorted({j.state.value for j in done})
    echo(f"Modified {len(done)} {noun} (now {', '.join(states)})")


@job.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--state", "states", multiple=True, type=_state_type, help="jobs in this state (repeatable)")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="jobs with this tag (repeatable: all)")
@click.option("--app", "app_name", help="jobs of this app (name or id)")
@site_option()
@click.option("--all", "all_jobs", is_flag=True, help="every job you own (asks first unless --yes)")
@click.option("-y", "--yes", is_flag=True, help="do not ask for confirmation with --all")
def rm(
    ids: tuple[int, ...],
    states: tuple[str, ...],
    tags: tuple[str, ...],
    app_name: str | None,
    site: str | None,
    all_jobs: bool,
    yes: bool,
) -> None:
    """Remove jobs by id or filter; says how many were removed.

    Refuses to run without an id or a filter unless --all is given. Ids that do not
    exist are an error and nothing is removed.

    \b
    Examples:
      tolu job rm 12 13
      tolu job rm --tag run=a --state FAILED
      tolu job rm --all --yes
    """
    client = get_client()
    filters, _site = _filters(client, ids=ids, states=states, tags=tags, app_name=app_name, site=site)
    has_filter = any(v is not None for v in filters.values())
    if not has_filter and not all_jobs:
        fail("no jobs selected: give ids or --state/--tag/--app/--site, or --all to remove every job")
    if ids:
        wanted = sorted(set(ids))
        found = {j.id for j in client.jobs.filter(id=wanted)}
        missing = [i for i in wanted if i not in found]
        if missing:
            fail(f"no such jobs: {', '.join(map(str, missing))} (nothing removed)")
    if has_filter:
        removed = client.jobs.delete_where(**filters)
    else:
        total = client.jobs.count()
        if total and not yes:
            click.confirm(f"Remove all {total} of your jobs?", abort=True, err=True)
        removed = sum(client.jobs.delete_where(site_id=s.id) for s in client.sites.filter())
    echo(f"Removed {removed} job{'' if removed == 1 else 's'}")
