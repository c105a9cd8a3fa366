"""`tolu server` (being built)."""

import click


@click.group()
def server() -> None:
    """(being built)"""
