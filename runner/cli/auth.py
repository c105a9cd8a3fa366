"""``tolu register`` and ``tolu login``: accounts and the saved login.

Three ways to log in, each saving a login that renews itself (access tokens are
short-lived; the refresh token rotates) to $TOLU_CONFIG or ~/.config/tolu/credentials.yaml:

- a password, read from a hidden prompt or, for scripts, from stdin
  (``--password-stdin``) — never from the command line, where ``ps`` and the shell
  history would show it;
- ``--device``: a code to approve elsewhere (``tolu login approve CODE`` or the page
  it prints), for machines without a browser;
- ``--sso``: the facility's identity provider (its own device login).
"""

from __future__ import annotations

import os
import socket
import sys

import click

from runner.cli._common import (
    CLI_RETRIES,
    USER_ERRORS,
    ToluCommand,
    ToluGroup,
    describe,
    echo,
    fail,
    get_client,
    quiet_retries,
)
from runner.client import Client, ConfigError, default_url
from runner.client.config import ENV_URL, read_config

_URL_HELP = "server URL [default: $TOLU_URL, else the last login's, else http://127.0.0.1:8000]"


def _url(url: str | None) -> str:
    if url:
        return url
    if os.environ.get(ENV_URL):
        return default_url()
    try:
        return read_config().url
    except ConfigError:
        return default_url()


def _read_password(password_stdin: bool, *, confirm: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("--password-stdin: no password on stdin")
        return line
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return password


def _username(username: str | None, password_stdin: bool) -> str:
    if username:
        return username
    if password_stdin:
        fail("--password-stdin needs --username (stdin holds the password)")
    name: str = click.prompt("Username")
    return name


def _client_name(how: str) -> str:
    return f"tolu CLI ({how}) on {socket.gethostname()}"[:128]


def _save(client: Client) -> None:
    path = client.save_config()
    echo(f"Logged in as {client.username} at {client.url} (token saved to {path})")


def _show_code(verification_uri: str, user_code: str, complete: str) -> None:
    _show(verification_uri, user_code, complete)
    echo(f"  or, where you are logged in already: tolu login approve {user_code}")
    echo("Waiting for approval...")


def _show_provider_code(verification_uri: str, user_code: str, complete: str) -> None:
    _show(verification_uri, user_code, complete)
    echo("Waiting for you to sign in at the identity provider...")


def _show(verification_uri: str, user_code: str, complete: str) -> None:
    echo(f"To log in, open {complete}")
    echo(f"  or go to {verification_uri} and enter the code {user_code}")


@click.command(cls=ToluCommand)
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--username", "-u", default=None, help="account name (prompted if not given)")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@click.option("--no-login", is_flag=True, help="only create the account; do not log in")
def register(url: str | None, username: str | None, password_stdin: bool, no_login: bool) -> None:
    """Create an account on the server, then log in (token saved for later commands).

    Passwords need at least 10 characters (the server's TOLU_PASSWORD_MIN_LENGTH) and
    must not be a common one; usernames are compared without case.

    \b
    Examples:
      tolu register --username alice                 # prompts twice for the password
      echo "$PASS" | tolu register -u alice --password-stdin --url http://host:8000
    """
    quiet_retries()
    url = _url(url)
    name = _username(username, password_stdin)
    password = _read_password(password_stdin, confirm=True)
    user = Client.register(url, name, password, retries=CLI_RETRIES)
    echo(f"Registered {user.username} at {url}")
    if not no_login:
        _save(Client.login(url, name, password, retries=CLI_RETRIES, client_name=_client_name("password")))


class LoginGroup(ToluGroup):
    """``tolu login [OPTIONS]`` logs in; ``tolu login approve|deny CODE`` answers a device."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:  # the group's own callback logs in: same one-line errors
            fail(describe(exc))


@click.group(cls=LoginGroup, invoke_without_command=True)
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--username", "-u", default=None, help="account name (prompted if not given)")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@click.option("--device", is_flag=True, help="log in with a code approved elsewhere (no password here)")
@click.option("--sso", is_flag=True, help="log in through the server's identity provider (single sign-on)")
@click.pass_context
def login(
    ctx: click.Context, url: str | None, username: str | None, password_stdin: bool, device: bool, sso: bool
) -> None:
    """Log in and save the login to $TOLU_CONFIG or ~/.config/tolu/credentials.yaml (mode 0600).

    The saved login renews itself; it lasts until unused for the server's refresh
    lifetime (30 days by default), or until revoked (`tolu token ls --logins`).

    \b
    Examples:
      tolu login --username alice                    # prompts for the password
      echo "$PASS" | tolu login -u alice --password-stdin --url http://host:8000
      tolu login --device --url https://tolu.example.org   # prints a code to approve
      tolu login approve BDFH-KLMN                   # approve it, where you are logged in
      tolu login --sso                               # the facility's identity provider
    """
    if ctx.invoked_subcommand is not None:
        if device or sso or username or password_stdin:
            fail(f"tolu login {ctx.invoked_subcommand} takes no login options")
        return
    quiet_retries()
    if device and sso:
        fail("choose one of --device and --sso")
    url = _url(url)
    if device or sso:
        if username or password_stdin:
            fail("--device and --sso ask for no username or password here")
        how = "device" if device else "sso"
        if device:
            client = Client.login_device(url, _show_code, client_name=_client_name(how), retries=CLI_RETRIES)
        else:
            client = Client.login_sso(
                url, _show_provider_code, client_name=_client_name(how), retries=CLI_RETRIES
            )
        _save(client)
        return
    name = _username(username, password_stdin)
    password = _read_password(password_stdin, confirm=False)
    _save(Client.login(url, name, password, retries=CLI_RETRIES, client_name=_client_name("password")))


def _decide(code: str, approve: bool) -> None:
    client = get_client()
    done = client.account.decide_device(code, approve=approve)
    if done["state"] == "approved":
        echo(f"Approved: the device with code {done['user_code']} is now logged in as {client.username}")
    else:
        echo(f"Denied: the device with code {done['user_code']} will not be logged in")


@login.command(cls=ToluCommand)
@click.argument("code")
def approve(code: str) -> None:
    """Approve a device login (`tolu login --device` elsewhere) with your account.

    The device gets a login of your account: approve only a code you started yourself.
    """
    _decide(code, True)


@login.command(cls=ToluCommand)
@click.argument("code")
def deny(code: str) -> None:
    """Refuse a device login: the device stops waiting with "the login was denied"."""
    _decide(code, False)
