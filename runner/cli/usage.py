"""Usage errors in one line: click prints its usage block above a usage error when it
knows the context; tolu prints one line and points at ``--help`` instead (exit 2).

Kept apart from ``_common`` so that the top-level ``tolu`` group imports nothing heavy.
"""

from __future__ import annotations

import click


def one_line_usage(exc: click.UsageError, ctx: click.Context) -> click.UsageError:
    return click.UsageError(f"{exc.format_message().strip()} (see `{ctx.command_path} --help`)")


class OneLineUsage(click.Command):
    """A command (or, mixed in first, a group) whose usage errors are one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise one_line_usage(exc, ctx) from None


class OneLineUsageGroup(OneLineUsage, click.Group):
    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise one_line_usage(exc, ctx) from None
