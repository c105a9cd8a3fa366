"""`tolu app` (being built)."""

import click


@click.group()
def app() -> None:
    """(being built)"""
