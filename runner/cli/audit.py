"""``tolu audit``: what happened to your account (logins, tokens, device approvals)."""

from __future__ import annotations

import click

from runner.cli._common import ToluGroup, format_time, get_client, print_json, print_table


@click.group(cls=ToluGroup)
def audit() -> None:
    """Your account's audit events: logins (and failed attempts), tokens made and revoked,
    device approvals, changes by an administrator."""


@audit.command(name="ls")
@click.option("--action", default=None, help="only this action, e.g. login.failed")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def ls(action: str | None, limit: int, as_json: bool) -> None:
    """List them, newest first."""
    page = get_client().account.audit(action=action, limit=limit)
    if as_json:
        print_json([e.model_dump(mode="json") for e in page.results])
        return
    rows = [
        (format_time(e.at), e.action, e.address or "", ", ".join(f"{k}={v}" for k, v in e.detail.items()))
        for e in page.results
    ]
    print_table(["when", "action", "from", "detail"], rows)
