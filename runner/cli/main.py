"""The ``tolu`` command.

Each built-in subcommand lives in its own module here and is imported only when it is
used, so ``tolu --help`` stays fast and one broken subsystem cannot take the others down.

The tooling (``tolu bench``, ``tolu ci``) is not part of the runner: it plugs its command
groups in through the entry-point group ``tolu.commands``::

    [project.entry-points."tolu.commands"]
    bench = "harness.bench.cli:bench"

A command that needs an extra calls ``runner.extras.require_extra`` (``tolu bench`` does
in its group callback, before any subcommand runs); whatever command raises
:class:`~runner.extras.MissingExtra`, ``tolu`` prints its one line, e.g.
``Error: tolu bench needs the [bench] extra (missing: matplotlib): pip install 'tolu[bench]'``,
and exits 1.
"""

from __future__ import annotations

import functools
import importlib
from importlib import metadata

import click

from runner.cli.usage import OneLineUsageGroup
from runner.extras import MissingExtra

#: command name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "server": "runner.cli.server:server",
    "register": "runner.cli.auth:register",
    "login": "runner.cli.auth:login",
    "token": "runner.cli.token:token",
    "audit": "runner.cli.audit:audit",
    "admin": "runner.cli.admin:admin",
    "site": "runner.cli.site:site",
    "app": "runner.cli.app:app",
    "job": "runner.cli.job:job",
    "queue": "runner.cli.queue:queue",
    "launcher": "runner.cli.launcher:launcher",
    "dag": "runner.cli.dag:dag",
    "status": "runner.cli.status:status",
    "whoami": "runner.cli.status:whoami",
    "logout": "runner.cli.status:logout",
    "event": "runner.cli.event:event",
    "transfer": "runner.cli.transfer:transfer",
    "session": "runner.cli.session:session",
}

#: commands for people who work on tolu itself (its test pipeline, its benchmarks):
#: listed apart in ``tolu --help``.
DEVELOPER_COMMANDS = frozenset({"bench", "ci"})

#: the entry-point group that other packages register ``tolu`` command groups in.
PLUGIN_GROUP = "tolu.commands"


@functools.cache
def plugins() -> dict[str, list[metadata.EntryPoint]]:
    """Command name -> the entry points that register it (more than one is an error)."""
    found: dict[str, list[metadata.EntryPoint]] = {}
    for entry_point in metadata.entry_points(group=PLUGIN_GROUP):
        found.setdefault(entry_point.name, []).append(entry_point)
    return found


class PluginGroup(OneLineUsageGroup):
    """The built-in COMMANDS plus the groups registered under PLUGIN_GROUP."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry_points = plugins().get(cmd_name, [])
        targets = ([COMMANDS[cmd_name]] if cmd_name in COMMANDS else []) + [ep.value for ep in entry_points]
        if len(targets) > 1:
            return unavailable(cmd_name, f"tolu {cmd_name} is defined more than once: {', '.join(targets)}")
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
        elif entry_points:
            command = entry_points[0].load()
        else:
            return None
        if not isinstance(command, click.Command):
            raise TypeError(f"tolu {cmd_name}: {targets[0]} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MissingExtra as exc:
            raise click.ClickException(str(exc)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands, then the developers' ones in a section of their own."""
        names = self.list_commands(ctx)
        for title, wanted in (
            ("Commands", [n for n in names if n not in DEVELOPER_COMMANDS]),
            (
                "Developer commands (tolu's own tests and benchmarks)",
                [n for n in names if n in DEVELOPER_COMMANDS],
            ),
        ):
            rows = []
            for name in wanted:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append(
                        (name, command.get_short_help_str(formatter.width - 6 - max(map(len, names))))
                    )
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def unavailable(name: str, message: str) -> click.Command:
    """A stand-in command that fails with ``message`` whatever it is given (``--help`` too)."""

    def fail() -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=fail,
        help=message,
        short_help=message,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tolu")
def cli() -> None:
    """tolu: run thousands to millions of jobs on HPC machines.

    \b
    Quick start, all on this machine:
      tolu server up --detach                  # SQLite in ~/.local/share/tolu, port 8000
      tolu register -u alice                   # asks for a password, then logs in
      tolu site init ./mysite                  # a site directory with an example app
      tolu app sync --site ./mysite            # its apps/ -> the server
      tolu job create --site ./mysite --app hello -n 10
      tolu launcher --site ./mysite --mode serial --max-idle-sec 5
      tolu status                              # the overview; then `tolu job ls`

    \b
    Every command takes --help; most take --json. Docs: docs/cli.md.
    Developer commands come from extras: `tolu bench` needs `pip install 'tolu[bench]'`,
    `tolu ci` needs `pip install 'tolu[harness]'`.
    """


if __name__ == "__main__":
    cli()
