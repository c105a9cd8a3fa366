"""`tolu launcher` (being built)."""

import click


@click.group()
def launcher() -> None:
    """(being built)"""
