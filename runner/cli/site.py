"""`tolu site` (being built)."""

import click


@click.group()
def site() -> None:
    """(being built)"""
