"""``tolu queue``: ask for allocations (BatchJobs), list them, withdraw them.

The site agent's scheduler service does the submitting and cancelling; these
commands only talk to the server.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from runner.cli._common import (
    ToluGroup,
    echo,
    format_tags,
    format_time,
    get_client,
    parse_pairs,
    print_json,
    print_table,
    resolve_site,
    site_option,
)
from runner.models import BatchJob, JobMode
from runner.states import BatchJobState

_state_type = click.Choice([s.value for s in BatchJobState], case_sensitive=False)


@click.group(cls=ToluGroup)
def queue() -> None:
    """Allocations asked from the facility scheduler (BatchJobs).

    \b
    Examples:
      tolu queue submit --site ./mysite -n 2 -t 30 -q debug -A myproj --mode mpi
      tolu queue ls --site ./mysite --state queued --state running
      tolu queue rm 4 5
    """


@queue.command()
@site_option(required=True)
@click.option("-n", "--num-nodes", type=click.IntRange(1), required=True, help="nodes")
@click.option("-t", "--wall-time-min", type=click.IntRange(1), required=True, help="wall time in minutes")
@click.option("-q", "--queue", "queue_name", default="", help="queue/partition [default: the site's]")
@click.option("-A", "--project", default="", help="project/account [default: the site's]")
@click.option("--mode", type=click.Choice([m.value for m in JobMode]), default=JobMode.MPI.value,
              show_default=True, help="launcher mode")
@click.option("--tag", "tags", multiple=True, metavar="K=V",
              help="run only jobs with these tags (repeatable)")
@click.option("--option", "options", multiple=True, metavar="K=V",
              help="extra scheduler option for the batch script (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="print the BatchJob as JSON")
def submit(site: str, num_nodes: int, wall_time_min: int, queue_name: str, project: str, mode: str,
           tags: Sequence[str], options: Sequence[str], as_json: bool) -> None:
    """Ask for one allocation; the site agent submits it."""
    client = get_client()
    site_obj = resolve_site(client, site)
    bj = client.batch_jobs.create(
        site_id=site_obj.id, num_nodes=num_nodes, wall_time_min=wall_time_min, job_mode=mode,
        project=project, queue=queue_name, filter_tags=parse_pairs(tags, "--tag"),
        options=parse_pairs(options, "--option"),
    )
    if as_json:
        print_json(bj.model_dump(mode="json"))
    else:
        echo(f"batch job {bj.id}: {bj.num_nodes} node(s) x {bj.wall_time_min} min ({bj.job_mode.value}) "
             f"at site {site_obj.name}: {bj.state.value}")


@queue.command("ls")
@site_option()
@click.option("--state", "states", multiple=True, type=_state_type, help="only these states (repeatable)")
@click.option("--all", "show_all", is_flag=True, help="include ended batch jobs (default: only active ones)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def ls(site: str | None, states: Sequence[str], show_all: bool, as_json: bool) -> None:
    """List batch jobs (active ones unless --state or --all)."""
    client = get_client()
    site_id = resolve_site(client, site).id if site else None
    wanted: list[str] | None = list(states) or None
    if wanted is None and not show_all:
        wanted = [s.value for s in BatchJobState if s.value not in ("submit_failed", "finished", "failed")]
    rows: list[BatchJob] = client.batch_jobs.filter(site_id=site_id, state=wanted)
    if as_json:
        print_json([b.model_dump(mode="json") for b in rows])
        return
    print_table(
        ["id", "site", "scheduler id", "state", "nodes", "wall min", "mode", "queue", "project", "tags",
         "started", "ended"],
        [
            (b.id, b.site_id, b.scheduler_id or "-", b.state.value, b.num_nodes, b.wall_time_min,
             b.job_mode.value, b.queue or "-", b.project or "-", format_tags(b.filter_tags) or "-",
             format_time(b.start_time), format_time(b.end_time))
            for b in rows
        ],
    )


@queue.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--json", "as_json", is_flag=True, help="print the batch jobs as JSON")
def rm(ids: Sequence[int], as_json: bool) -> None:
    """Withdraw batch jobs: the site agent cancels them in the scheduler."""
    client = get_client()
    done = [client.batch_jobs.delete(batch_job_id) for batch_job_id in ids]
    if as_json:
        print_json([bj.model_dump(mode="json") for bj in done])
        return
    for bj in done:
        echo(f"batch job {bj.id}: {bj.state.value}")
