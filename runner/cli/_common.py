"""Helpers shared by the ``tolu`` commands: one-line errors, the client, tables, k=v options.

Every command built with :class:`ToluCommand`/:class:`ToluGroup` turns the errors a
user can cause (server said no, server unreachable, bad file, bad option value) into
one red line on stderr and exit status 1 — never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from runner.apps import AppDefinitionError
from runner.cli.usage import OneLineUsage, OneLineUsageGroup
from runner.client import Client, ToluError
from runner.models import App, Site
from runner.site.settings import SettingsError
from runner.site.settings import load as load_settings

#: the errors a command reports as one line (anything else is a bug: traceback).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ToluError,
    AppDefinitionError,
    SettingsError,
    ValidationError,
    OSError,
)

#: retries for interactive commands: fail in about a second when the server is down.
CLI_RETRIES = 2


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red line on stderr and exit ``code`` (1)."""
    err_console().print(f"[bold red]Error:[/] {_one_line(message)}", highlight=False, markup=True)
    sys.exit(code)


def _one_line(message: str) -> str:
    from rich.markup import escape

    return escape(" ".join(str(message).split()))


def describe(exc: BaseException) -> str:
    """The one line a user error is reported as."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"{loc}: {first['msg']}" if loc else first["msg"]
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


class ToluCommand(OneLineUsage):
    """A click command whose user errors become one line on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            fail(describe(exc))


class ToluGroup(OneLineUsageGroup):
    command_class = ToluCommand
    group_class = type


class StateType(click.ParamType):
    """A job state, case-insensitive (``killed`` or ``KILLED``)."""

    name = "STATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from runner.states import JobState

        text = str(value).upper()
        if text not in JobState.__members__:
            self.fail(f"{value!r} is not a job state (one of {', '.join(JobState.__members__)})", param, ctx)
        return text


def out_console() -> Console:
    # Wide when not a terminal, so piped tables and CliRunner output are not squeezed.
    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def err_console() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 400)


def echo(message: str) -> None:
    """A plain line on stdout."""
    click.echo(message)


def quiet_retries() -> None:
    """Retry warnings stay out of the terminal: a command prints one line, or one error."""
    logging.getLogger("runner.client").setLevel(logging.ERROR)


def get_client() -> Client:
    """The client of ``tolu login`` (``$TOLU_CONFIG`` or ~/.config/tolu/credentials.yaml)."""
    quiet_retries()
    return Client.from_config(retries=CLI_RETRIES)


# ---------------------------------------------------------------- option parsing


def parse_value(text: str) -> Any:
    """A ``--param`` value: JSON if it parses (5, 1.5, true, null, [1,2], "quoted"), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(values: Iterable[str], option: str, *, typed: bool = False, sep: str = "=") -> dict[str, Any]:
    """``("a=1", "b=x")`` -> ``{"a": 1 or "1", "b": "x"}``; a value without ``=`` is an error."""
    out: dict[str, Any] = {}
    for item in values:
        key, eq, value = item.partition(sep)
        if not eq or not key:
            fail(f"{option} {item!r}: expected KEY{sep}VALUE")
        out[key] = parse_value(value) if typed else value
    return out


def format_tags(tags: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items()))


def format_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    out_console().print(table(columns, rows, title=title))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# ---------------------------------------------------------------- sites and apps


SITE_HELP = "the site: its directory (with settings.yml), its id, or its name [default: $TOLU_SITE]"


def site_option(required: bool = False) -> Callable[[Any], Any]:
    return click.option("--site", "site", envvar="TOLU_SITE", help=SITE_HELP, required=required)


def site_dir_id(site_dir: str | os.PathLike[str]) -> int:
    """The registered site id of a site directory (from its settings.yml)."""
    settings = load_settings(site_dir)
    if settings.site_id is None:
        fail(f"site {site_dir} is not registered with the server: run `tolu site init {site_dir}`")
    return settings.site_id


def resolve_site(client: Client, site: str) -> Site:
    """A site given as a directory, an id or a name."""
    path = Path(site)
    if path.is_dir():
        return client.sites.get(site_dir_id(path))
    if site.isdigit():
        return client.sites.get(int(site))
    found = client.sites.filter(name=site)
    if not found:
        fail(f"no site {site!r}: give a site directory, id or name (see `tolu site ls`)")
    return found[0]


def resolve_app(client: Client, app: str, site: Site | None) -> App:
    """An app given by id, or by name (within ``site`` if given; must be unambiguous)."""
    if app.isdigit():
        return client.apps.get(int(app))
    found = client.apps.filter(name=app, site_id=site.id if site else None)
    if not found:
        where = f" at site {site.name!r}" if site else ""
        fail(f"no app named {app!r}{where} (sync it with `tolu app sync --site DIR`; see `tolu app ls`)")
    if len(found) > 1:
        sites = ", ".join(str(a.site_id) for a in found)
        fail(f"app {app!r} exists at several sites (ids {sites}): choose one with --site")
    return found[0]


# ---------------------------------------------------------------- --json, --watch, --since


def json_option(help: str = "print JSON instead of text") -> Callable[[Any], Any]:
    return click.option("--json", "as_json", is_flag=True, help=help)


def watch_options(what: str) -> Callable[[Any], Any]:
    """``--watch`` and ``--interval``: redraw ``what`` until Ctrl-C."""

    def decorate(fn: Any) -> Any:
        fn = click.option(
            "--interval",
            default=2.0,
            show_default=True,
            type=click.FloatRange(0.1),
            help="seconds between redraws",
        )(fn)
        return click.option("-w", "--watch", is_flag=True, help=f"redraw {what} until Ctrl-C")(fn)

    return decorate


def watch(render: Callable[[], Any], interval: float) -> None:
    """Show ``render()`` again every ``interval`` seconds until Ctrl-C (exit 0).

    On a terminal the table is redrawn in place; piped, each new version is printed
    below the last one under a time line, only when it changed.
    """
    import time

    console = out_console()
    try:
        if console.is_terminal:
            from rich.live import Live

            with Live(render(), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(render(), refresh=True)
        last = ""
        while True:
            with console.capture() as captured:
                console.print(render())
            text = captured.get()
            if text != last:
                click.echo(f"-- {datetime.now().astimezone().strftime('%H:%M:%S')}")
                click.echo(text, nl=False)
                sys.stdout.flush()
                last = text
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def show_or_watch(render: Callable[[], Any], watching: bool, interval: float) -> None:
    """Print ``render()`` once, or keep redrawing it (``--watch``)."""
    if watching:
        watch(render, interval)
    else:
        out_console().print(render())


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> Table:
    """The table ``print_table`` prints (for ``watch``)."""
    out = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    return out


class Since(click.ParamType):
    """A point in time: ``10m``, ``2h``, ``3d`` ago, or an ISO date/time."""

    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        from datetime import UTC, timedelta

        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
            return datetime.now(UTC) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r}: give a duration (30s, 10m, 2h, 1d) or an ISO time (2026-01-31T12:00)", param, ctx
            )
        return when if when.tzinfo else when.astimezone()


def noun(n: int, word: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def ago(when: datetime | None) -> str:
    """``5 s ago``, ``3 min ago``, ``never``."""
    if when is None:
        return "never"
    from datetime import UTC

    now = datetime.now(UTC)
    seconds = (now - (when if when.tzinfo else when.replace(tzinfo=UTC))).total_seconds()
    if seconds < 90:
        return f"{max(0, round(seconds))} s ago"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 172800:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"
