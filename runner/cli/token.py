"""``tolu token``: the account's tokens (scoped, expiring, revocable) and logins.

A token is for a program that should not hold your login: a site's agent and
launchers (``--site``: it reaches that site's rows only), a dashboard
(``--read-only``), a script (full). The server keeps only a hash of it: the secret
is printed once, or saved to the site directory with ``--save``.
"""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli._common import (
    ToluGroup,
    echo,
    fail,
    format_time,
    get_client,
    print_json,
    print_table,
    resolve_site,
)
from runner.client import Client
from runner.client.config import Credentials, site_credentials_path, write_config
from runner.models import ApiToken, Site


@click.group(cls=ToluGroup)
def token() -> None:
    """Tokens: for site agents and launchers, scripts, read-only dashboards.

    \b
      tolu token create ci-reader --read-only --days 30
      tolu token create agent --site ./mysite --save   # SITE/credentials.yaml, used by its agent
      tolu token ls                                    # add --logins for your logins too
      tolu token revoke 12                             # refused from its next request on
    """


def save_site_token(
    client: Client, site: Site, site_dir: Path, *, name: str = "", days: float | None = None
) -> Path:
    """Make a site token for ``site`` and write it to SITE_DIR/credentials.yaml (0600)."""
    made = client.account.create_token(
        name or f"site {site.name} agent and launchers", scope="site", site_id=site.id, expires_in_days=days
    )
    username = client.username or client.me().username
    creds = Credentials(url=client.url, username=username, api_token=made.token)
    return write_config(creds, site_credentials_path(site_dir))


@token.command()
@click.argument("name")
@click.option("--read-only", "read_only", is_flag=True, help="may only read (GET), never change anything")
@click.option(
    "--site", "site", default=None, help="a site token: reaches only this site (directory, id or name)"
)
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="days until it expires [default: 90; site tokens: never]",
)
@click.option("--no-expiry", is_flag=True, help="never expires (until revoked)")
@click.option(
    "--save", is_flag=True, help="with --site DIR: write it to DIR/credentials.yaml for the site's agent"
)
def create(
    name: str, read_only: bool, site: str | None, days: float | None, no_expiry: bool, save: bool
) -> None:
    """Make a token NAME and print its secret (shown this once).

    Without --read-only or --site the token can do all that you can.
    """
    if read_only and site:
        fail("choose one of --read-only and --site")
    if no_expiry and days is not None:
        fail("choose one of --days and --no-expiry")
    if save and (site is None or not Path(site).is_dir()):
        fail("--save writes to a site directory: give it as --site DIR")
    client = get_client()
    expiry = None if no_expiry or (site and days is None) else (days or 90.0)
    if site is not None:
        target = resolve_site(client, site)
        if save:
            path = save_site_token(client, target, Path(site), name=name, days=expiry)
            echo(f"site token {name!r} for site {target.name!r} saved to {path} (used by its agent)")
            return
        made = client.account.create_token(name, scope="site", site_id=target.id, expires_in_days=expiry)
    else:
        made = client.account.create_token(
            name, scope="read" if read_only else "full", expires_in_days=expiry
        )
    echo(made.token)
    click.echo(
        f"token {made.id} {name!r} ({_scope(made)}, expires {_expires(made)}): shown once, store it now",
        err=True,
    )


def _expires(t: ApiToken) -> str:
    return format_time(t.expires_at) if t.expires_at else "never"


def _scope(t: ApiToken) -> str:
    return f"site {t.site_id}" if t.scope == "site" else ("read-only" if t.scope == "read" else "full")


def _state(t: ApiToken) -> str:
    return "revoked" if t.revoked_at else "active"


@token.command(name="ls")
@click.option("--logins", is_flag=True, help="also your logins (password, device, SSO)")
@click.option("--all", "include_revoked", is_flag=True, help="also revoked and expired ones")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def ls(logins: bool, include_revoked: bool, as_json: bool) -> None:
    """List your tokens, newest first."""
    client = get_client()
    found = client.account.tokens(include_revoked=include_revoked, kind=None if logins else "token")
    if as_json:
        print_json([t.model_dump(mode="json") for t in found])
        return
    rows = [
        (
            t.id,
            t.kind if t.kind == "token" else f"login ({t.via})",
            t.name,
            _scope(t),
            t.hint or "",
            format_time(t.created_at),
            format_time(t.expires_at) if t.expires_at else "never",
            format_time(t.last_used_at),
            _state(t),
        )
        for t in found
    ]
    print_table(["id", "kind", "name", "scope", "starts", "created", "expires", "last used", "state"], rows)


@token.command()
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke token (or login) TOKEN_ID: refused from its next request on."""
    revoked = get_client().account.revoke(token_id)
    echo(f"revoked {revoked.kind} {revoked.id} {revoked.name!r}")
