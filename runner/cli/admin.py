"""``tolu admin``: accounts, for administrators (role admin)."""

from __future__ import annotations

import click

from runner.cli._common import ToluGroup, echo, fail, format_time, get_client, print_table
from runner.client import Client
from runner.models import User


@click.group(cls=ToluGroup)
def admin() -> None:
    """Administer accounts (needs the admin role: TOLU_ADMIN_USERS on the server, the
    identity provider's admin group, or another admin's `tolu admin role`).

    \b
      tolu admin users
      tolu admin disable bob        # every login and token of bob refused at once
      tolu admin enable bob
      tolu admin role bob admin
    """


def _user(client: Client, name: str) -> User:
    for user in client.admin.users():
        if user.username.casefold() == name.casefold() or str(user.id) == name:
            return user
    fail(f"no account {name!r} (see `tolu admin users`)")


@admin.command()
def users() -> None:
    """List every account."""
    rows = [
        (
            u.id,
            u.username,
            u.role,
            u.email or "",
            "disabled" if u.disabled else "active",
            format_time(u.created_at),
        )
        for u in get_client().admin.users()
    ]
    print_table(["id", "username", "role", "email", "state", "created"], rows)


@admin.command()
@click.argument("username")
def disable(username: str) -> None:
    """Disable an account: its logins and tokens are refused from their next request on."""
    client = get_client()
    user = client.admin.update_user(_user(client, username).id, disabled=True)
    echo(f"disabled {user.username}")


@admin.command()
@click.argument("username")
def enable(username: str) -> None:
    """Enable a disabled account again."""
    client = get_client()
    user = client.admin.update_user(_user(client, username).id, disabled=False)
    echo(f"enabled {user.username}")


@admin.command()
@click.argument("username")
@click.argument("role", type=click.Choice(["user", "admin"]))
def role(username: str, role: str) -> None:
    """Set an account's role."""
    client = get_client()
    user = client.admin.update_user(_user(client, username).id, role=role)
    echo(f"{user.username} is now {user.role}")
