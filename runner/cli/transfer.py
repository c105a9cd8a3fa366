"""``tolu transfer``: the stage-in and stage-out items of jobs."""

from __future__ import annotations

import click

from runner.cli._common import (
    ToluGroup,
    format_time,
    get_client,
    json_option,
    print_json,
    print_table,
    resolve_site,
    site_option,
)
from runner.models import TransferDirection, TransferState


@click.group(cls=ToluGroup)
def transfer() -> None:
    """Transfers: files staged in before jobs run, and out after (docs/transfer.md).

    \b
    Examples:
      tolu transfer ls --job 12
      tolu transfer ls --state error
    """


@transfer.command("ls")
@click.option("--job", "jobs", multiple=True, type=int, metavar="ID", help="items of this job (repeatable)")
@site_option()
@click.option("--state", type=click.Choice([s.value for s in TransferState]), help="only items in this state")
@click.option("--direction", type=click.Choice([d.value for d in TransferDirection]), help="in or out")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0), help="rows to show (0: all)")
@json_option()
def ls(
    jobs: tuple[int, ...],
    site: str | None,
    state: str | None,
    direction: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List transfer items: job, direction, source, destination, state, error."""
    client = get_client()
    site_id = resolve_site(client, site).id if site else None
    items = client.transfers.filter(
        site_id=site_id, job_id=list(jobs) or None, state=state, direction=direction, limit=limit or None
    )
    if as_json:
        print_json([x.model_dump(mode="json") for x in items])
        return
    print_table(
        ("id", "job", "dir", "source", "destination", "state", "task", "updated", "error"),
        [
            (
                x.id,
                x.job_id,
                x.direction.value,
                x.source,
                x.destination,
                x.state.value,
                x.task_id or "-",
                format_time(x.updated_at),
                x.error or "",
            )
            for x in items
        ],
    )
