"""``tolu register`` and ``tolu login``: accounts and the saved token.

The password is read from a hidden prompt or, for scripts, from stdin
(``--password-stdin``) — never from the command line, where ``ps`` and the shell
history would show it.
"""

from __future__ import annotations

import os
import sys

import click

from runner.cli._common import CLI_RETRIES, ToluCommand, echo, fail, quiet_retries
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


def _login_and_save(url: str, username: str, password: str) -> None:
    client = Client.login(url, username, password, retries=CLI_RETRIES)
    path = client.save_config()
    echo(f"Logged in as {client.username} at {client.url} (token saved to {path})")


@click.command(cls=ToluCommand)
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--username", "-u", default=None, help="account name (prompted if not given)")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@click.option("--no-login", is_flag=True, help="only create the account; do not log in")
def register(url: str | None, username: str | None, password_stdin: bool, no_login: bool) -> None:
    """Create an account on the server, then log in (token saved for later commands).

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
        _login_and_save(url, name, password)


@click.command(cls=ToluCommand)
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--username", "-u", default=None, help="account name (prompted if not given)")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def login(url: str | None, username: str | None, password_stdin: bool) -> None:
    """Log in and save the token to $TOLU_CONFIG or ~/.config/tolu/credentials.yaml (mode 0600).

    \b
    Examples:
      tolu login --username alice                    # prompts for the password
      echo "$PASS" | tolu login -u alice --password-stdin --url http://host:8000
    """
    quiet_retries()
    url = _url(url)
    name = _username(username, password_stdin)
    password = _read_password(password_stdin, confirm=False)
    _login_and_save(url, name, password)
