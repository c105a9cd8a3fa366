"""``tolu job``: create, list, modify and remove jobs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from runner.cli._common import (
    StateType,
    ToluGroup,
    echo,
    err_console,
    fail,
    format_tags,
    format_time,
    get_client,
    json_option,
    parse_pairs,
    print_json,
    print_table,
    resolve_app,
    resolve_site,
    show_or_watch,
    site_option,
    table,
    watch_options,
)
from runner.client import Client, InvalidRequest
from runner.client.failures import output_path
from runner.models import Job, JobCreate, JobUpdate, Resources, Site, TransferDirection, TransferItemCreate
from runner.states import FINAL, JobState

_state_type = StateType()


@click.group(cls=ToluGroup)
def job() -> None:
    """Jobs: one run of an app with parameters, resources, tags and parents.

    \b
    Examples:
      tolu job create --app hello --param name=world -n 100 --tag run=a
      tolu job ls --tag run=a --by-state
      tolu job wait --tag run=a               # until all end; exit 1 listing failures
      tolu job show 12
      tolu job logs 12 -f
      tolu job cancel --tag run=a
      tolu job modify 12 13 --state RESTART_READY
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
@json_option("print the created jobs as JSON")
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
    as_json: bool,
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
    if as_json:
        print_json([j.model_dump(mode="json") for j in made])
        return
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


#: --sort choices -> the server's ordering.
SORTS = {
    "newest": "-id",
    "oldest": "id",
    "updated": "-updated_at",
    "least-updated": "updated_at",
    "state": "state",
}


@job.command("ls")
@click.argument("ids", nargs=-1, type=int)
@click.option(
    "--state", "states", multiple=True, type=_state_type, help="only jobs in this state (repeatable)"
)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="only jobs with this tag (repeatable: all)")
@click.option("--app", "app_name", help="only jobs of this app (name or id)")
@site_option()
@click.option("--by-state", is_flag=True, help="print how many jobs are in each state")
@click.option(
    "--sort",
    type=click.Choice(list(SORTS)),
    default="newest",
    show_default=True,
    help="row order: newest/oldest created, recently/least recently updated, by state",
)
@json_option()
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0), help="rows to show (0: all)")
@watch_options("the table")
def ls(
    ids: tuple[int, ...],
    states: tuple[str, ...],
    tags: tuple[str, ...],
    app_name: str | None,
    site: str | None,
    by_state: bool,
    sort: str,
    as_json: bool,
    limit: int,
    watch: bool,
    interval: float,
) -> None:
    """List jobs: id, app, state, tags, nodes, updated (newest first; see --sort).

    \b
    Examples:
      tolu job ls --state RUNNING --tag run=a
      tolu job ls --by-state --watch          # counts per state, redrawn until Ctrl-C
      tolu job ls --app hello --json --limit 0
      tolu job ls --sort oldest
    """
    client = get_client()
    filters, _site = _filters(client, ids=ids, states=states, tags=tags, app_name=app_name, site=site)
    if by_state:
        if as_json:
            print_json({s.value: n for s, n in _state_rows(client, filters)})
            return
        show_or_watch(lambda: _state_table(client, filters), watch, interval)
        return
    if as_json:
        jobs = _listed(client, filters, sort, limit)[0]
        print_json([j.model_dump(mode="json") for j in jobs])
        return
    names = {a.id: a.name for a in client.apps.filter()}
    show_or_watch(lambda: _jobs_table(client, filters, sort, limit, names), watch, interval)


def _listed(client: Client, filters: dict[str, Any], sort: str, limit: int) -> tuple[list[Any], int]:
    ordering = SORTS[sort]
    if not limit:
        found = client.jobs.filter(**filters, ordering=ordering)
        return found, len(found)
    page = client.jobs.page(**filters, ordering=ordering, limit=limit)
    return page.results, page.count


def _jobs_table(client: Client, filters: dict[str, Any], sort: str, limit: int, names: dict[int, str]) -> Any:
    jobs, total = _listed(client, filters, sort, limit)
    rows = [
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
    shown = table(("id", "app", "state", "tags", "nodes", "updated"), rows)
    if len(jobs) < total:
        from rich.console import Group

        return Group(shown, f"({len(jobs)} of {total} jobs shown; --limit 0 shows all)")
    return shown


def _state_rows(client: Client, filters: dict[str, Any]) -> list[tuple[JobState, int]]:
    counts = client.jobs.counts(**filters)
    return [(s, counts[s]) for s in JobState if counts.get(s)]


def _state_table(client: Client, filters: dict[str, Any]) -> Any:
    rows = _state_rows(client, filters)
    return table(("state", "count"), [*((s.value, n) for s, n in rows), ("total", sum(n for _, n in rows))])


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
@json_option("print the changed jobs as JSON")
def modify(
    ids: tuple[int, ...],
    state: str | None,
    tags: tuple[str, ...],
    params: tuple[str, ...],
    retry_limit: int | None,
    as_json: bool,
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
    if as_json:
        print_json([j.model_dump(mode="json") for j in done])
        return
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
@json_option('print {"removed": N}')
def rm(
    ids: tuple[int, ...],
    states: tuple[str, ...],
    tags: tuple[str, ...],
    app_name: str | None,
    site: str | None,
    all_jobs: bool,
    yes: bool,
    as_json: bool,
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
    if as_json:
        print_json({"removed": removed})
        return
    echo(f"Removed {removed} job{'' if removed == 1 else 's'}")


def _selection(
    client: Client, ids: Sequence[int], tags: Sequence[str], app_name: str | None, site: str | None, what: str
) -> dict[str, Any]:
    filters, _site = _filters(client, ids=ids, tags=tags, app_name=app_name, site=site)
    if not any(v is not None for v in filters.values()):
        fail(f"no jobs selected: give ids or --tag/--app/--site to {what}")
    if ids:
        wanted = sorted(set(ids))
        found = {j.id for j in client.jobs.filter(id=wanted)}
        missing = [i for i in wanted if i not in found]
        if missing:
            fail(f"no such jobs: {', '.join(map(str, missing))}")
    return filters


@job.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="jobs with this tag (repeatable: all)")
@click.option("--app", "app_name", help="jobs of this app (name or id)")
@site_option()
@click.option("--timeout", type=click.FloatRange(0), help="give up after this many seconds (exit 1)")
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(0.1), help="seconds between checks"
)
@json_option("print the ended jobs as JSON")
def wait(
    ids: tuple[int, ...],
    tags: tuple[str, ...],
    app_name: str | None,
    site: str | None,
    timeout: float | None,
    interval: float,
    as_json: bool,
) -> None:
    """Wait until the jobs end (JOB_FINISHED, FAILED or KILLED).

    Exit 0 when every one finished; exit 1 with one line listing the jobs that failed or
    were killed, each with its reason and output file, or, after --timeout, the jobs
    still pending. A terminal shows how many have ended so far.

    \b
    Examples:
      tolu job wait 12 13
      tolu job wait --tag run=a --timeout 3600
    """
    client = get_client()
    filters = _selection(client, ids, tags, app_name, site, "wait for")
    wanted = [j.id for j in client.jobs.filter(**filters)]
    if not wanted:
        fail("no jobs match: nothing to wait for")
    live = sys.stderr.isatty()
    ended: list[Job] = []
    try:
        for done in client.jobs.as_completed(wanted, timeout=timeout, poll_sec=interval):
            ended.append(done)
            if live:
                sys.stderr.write(f"\r\x1b[K{len(ended)} of {len(wanted)} jobs ended")
                sys.stderr.flush()
    finally:
        if live:
            sys.stderr.write("\r\x1b[K")
    by_id = {j.id: j for j in ended}
    result = [by_id[i] for i in wanted]
    if as_json:
        print_json([j.model_dump(mode="json") for j in result])
    client.jobs.raise_failed(result)
    if not as_json:
        echo(f"{len(result)} {'job' if len(result) == 1 else 'jobs'} finished")


@job.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="jobs with this tag (repeatable: all)")
@click.option("--app", "app_name", help="jobs of this app (name or id)")
@site_option()
@json_option('print {"cancelled": N, "already_ended": M}')
def cancel(
    ids: tuple[int, ...], tags: tuple[str, ...], app_name: str | None, site: str | None, as_json: bool
) -> None:
    """Cancel jobs: every selected job that has not ended moves to KILLED (its children
    fail with the reason); ended ones are left as they are.

    \b
    Examples:
      tolu job cancel 12 13
      tolu job cancel --tag run=a
    """
    client = get_client()
    filters = _selection(client, ids, tags, app_name, site, "cancel")
    selected = client.jobs.filter(**filters)
    live = [j for j in selected if j.state not in FINAL]
    updates = [
        JobUpdate(id=j.id, state=JobState.KILLED, state_data={"reason": "cancelled with tolu job cancel"})
        for j in live
    ]
    client.jobs.bulk_update(updates, returning=False)
    if as_json:
        print_json({"cancelled": len(live), "already_ended": len(selected) - len(live)})
        return
    echo(
        f"Cancelled {len(live)} {'job' if len(live) == 1 else 'jobs'} ({len(selected) - len(live)} had ended)"
    )


@job.command()
@click.argument("job_id", type=int)
@click.option("-f", "--follow", is_flag=True, help="keep printing new output until the job ends")
@click.option("-n", "--tail", "tail_lines", type=click.IntRange(1), help="only the last N lines")
@click.option(
    "--interval", default=1.0, show_default=True, type=click.FloatRange(0.1), help="seconds between checks"
)
@json_option('print {"job", "state", "path", "output"}')
def logs(job_id: int, follow: bool, tail_lines: int | None, interval: float, as_json: bool) -> None:
    """Print a job's output (stdout and stderr: SITE/data/<workdir>/job.out).

    Read from the file where this host can see it; elsewhere the last lines the
    launcher reported for a failed run are shown, and where the whole file is.
    With -f, new output is printed as it comes until the job ends.

    \b
    Examples:
      tolu job logs 12
      tolu job logs 12 -f
      tolu job logs 12 -n 20
    """
    client = get_client()
    current = client.jobs.get(job_id)
    site_obj = client.sites.get(current.site_id)
    path = Path(output_path(site_obj, current))
    if as_json:
        text = _tail(path.read_text(errors="replace"), tail_lines) if path.is_file() else None
        print_json({"job": job_id, "state": current.state.value, "path": str(path), "output": text})
        return
    if not path.is_file() and not follow:
        failure = client.jobs.explain([current]).get(job_id)
        if failure is not None and failure.tail:
            click.echo(_tail(failure.tail, tail_lines), nl=not failure.tail.endswith("\n"))
        where = f"{site_obj.hostname}:{path}"
        err_console().print(
            f"(no output file here: job {job_id} is {current.state.value}; it writes to {where})"
        )
        return
    _print_output(client, job_id, path, tail_lines, follow, interval)


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    return "".join(text.splitlines(keepends=True)[-lines:])


def _print_output(
    client: Client, job_id: int, path: Path, lines: int | None, follow: bool, interval: float
) -> None:
    import time

    offset = 0
    first = True
    while True:
        if path.is_file():
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            text = chunk.decode(errors="replace")
            if first:
                text = _tail(text, lines)
            if text:
                click.echo(text, nl=False)
                sys.stdout.flush()
            first = False
        if not follow:
            return
        if client.jobs.get(job_id).state in FINAL and path.is_file() and path.stat().st_size == offset:
            return
        time.sleep(interval)
