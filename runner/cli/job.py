"""`tolu job` (being built)."""

import click


@click.group()
def job() -> None:
    """(being built)"""
