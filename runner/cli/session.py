"""``tolu session``: the launcher sessions the server knows (each holds the jobs it runs)."""

from __future__ import annotations

import click

from runner.cli._common import (
    ToluGroup,
    ago,
    format_time,
    get_client,
    json_option,
    print_json,
    print_table,
    resolve_site,
    site_option,
)


@click.group(cls=ToluGroup)
def session() -> None:
    """Launcher sessions: one per running launcher.

    The jobs a session holds come back (RESTART_READY) when it expires.

    \b
    Example:
      tolu session ls --site ./mysite
    """


@session.command("ls")
@site_option()
@json_option()
def ls(site: str | None, as_json: bool) -> None:
    """List open sessions: id, site, batch job, last heartbeat, expiry, jobs held."""
    client = get_client()
    site_id = resolve_site(client, site).id if site else None
    sessions = client.sessions.filter(site_id=site_id)
    held = {s.id: client.jobs.count(session_id=s.id) for s in sessions}
    if as_json:
        print_json([{**s.model_dump(mode="json"), "jobs_held": held[s.id]} for s in sessions])
        return
    print_table(
        ("id", "site", "batch job", "heartbeat", "expires", "jobs held"),
        [
            (s.id, s.site_id, s.batch_job_id or "-", ago(s.heartbeat), format_time(s.expires_at), held[s.id])
            for s in sessions
        ],
    )
