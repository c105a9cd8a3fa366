"""`tolu queue` (being built)."""

import click


@click.group()
def queue() -> None:
    """(being built)"""
