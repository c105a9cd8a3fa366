"""``tolu event``: the state history of jobs (one Event per accepted transition)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click

from runner.cli._common import (
    Since,
    StateType,
    ToluGroup,
    format_time,
    get_client,
    json_option,
    print_json,
    print_table,
    resolve_site,
    site_option,
)
from runner.models import Event

_state_type = StateType()


@click.group(cls=ToluGroup)
def event() -> None:
    """Events: every state change of every job, with when and why.

    \b
    Examples:
      tolu event ls --job 12
      tolu event ls --state FAILED --since 1h
      tolu event ls -f                      # follow new events until Ctrl-C
    """


def _row(e: Event) -> tuple[object, ...]:
    data = ", ".join(f"{k}={' '.join(str(v).split())[:80]}" for k, v in e.data.items())
    return (
        e.id,
        format_time(e.timestamp),
        e.job_id,
        e.from_state.value if e.from_state else "-",
        e.to_state.value,
        data,
    )


COLUMNS = ("id", "time", "job", "from", "to", "data")


@event.command("ls")
@click.option("--job", "jobs", multiple=True, type=int, metavar="ID", help="events of this job (repeatable)")
@site_option()
@click.option(
    "--state", "states", multiple=True, type=_state_type, help="events into this state (repeatable)"
)
@click.option("--since", type=Since(), help="only events after this: 30s, 10m, 2h, 1d, or an ISO time")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1), help="newest events shown")
@click.option("-f", "--follow", is_flag=True, help="then print new events as they come, until Ctrl-C")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="seconds between checks with -f",
)
@json_option()
def ls(
    jobs: tuple[int, ...],
    site: str | None,
    states: tuple[str, ...],
    since: datetime | None,
    limit: int,
    follow: bool,
    interval: float,
    as_json: bool,
) -> None:
    """List events, newest first (with -f: oldest first, then new ones as they come)."""
    client = get_client()
    site_id = resolve_site(client, site).id if site else None
    query: dict[str, Any] = {
        "job_id": list(jobs) or None,
        "site_id": site_id,
        "to_state": list(states) or None,
    }
    page = client.events.page(**query, after=since, ordering="-id", limit=limit)
    newest = page.results
    if not follow:
        if as_json:
            print_json([e.model_dump(mode="json") for e in newest])
            return
        print_table(COLUMNS, [_row(e) for e in newest])
        if len(newest) < page.count:
            click.echo(f"({len(newest)} of {page.count} events shown; --limit to see more)")
        return
    shown = list(reversed(newest))
    _print(shown, as_json, header=True)
    # Events are only ever appended (ids grow): in id order, the new ones come after the
    # ``offset`` already matching.
    offset, last = page.count, (shown[-1].id if shown else 0)
    try:
        while True:
            time.sleep(interval)
            more = client.events.page(**query, after=since, ordering="id", offset=offset, limit=1_000)
            offset += len(more.results)
            fresh = [e for e in more.results if e.id > last]
            if fresh:
                _print(fresh, as_json, header=False)
                last = fresh[-1].id
    except KeyboardInterrupt:
        return


def _print(events: list[Event], as_json: bool, *, header: bool) -> None:
    import json

    if as_json:
        for e in events:
            click.echo(json.dumps(e.model_dump(mode="json")))
        return
    if header:
        print_table(COLUMNS, [_row(e) for e in events])
        return
    for e in events:
        click.echo("  ".join(str(v) for v in _row(e)))
