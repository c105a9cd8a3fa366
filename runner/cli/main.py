"""The ``tolu`` command.

Each subcommand lives in its own module and is imported only when it is used, so
``tolu --help`` stays fast and one broken subsystem cannot take the others down.
"""

from __future__ import annotations

import importlib

import click

#: command name -> "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    "server": "runner.cli.server:server",
    "register": "runner.cli.auth:register",
    "login": "runner.cli.auth:login",
    "site": "runner.cli.site:site",
    "app": "runner.cli.app:app",
    "job": "runner.cli.job:job",
    "queue": "runner.cli.queue:queue",
    "launcher": "runner.cli.launcher:launcher",
    "bench": "runner.cli.bench:bench",
    "ci": "runner.cli.ci:ci",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tolu")
def cli() -> None:
    """tolu: run thousands to millions of jobs on HPC machines.

    \b
    Quick start:
      tolu server up --detach          # a server on SQLite in ~/.local/share/tolu
      tolu register && tolu login      # an account, a token in ~/.config/tolu
      tolu site init ./mysite          # a site directory, registered
      tolu job create --app hello -n 10
      tolu launcher --site ./mysite --mode serial
    """


if __name__ == "__main__":
    cli()
