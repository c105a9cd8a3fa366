"""`tolu bench` (being built)."""

import click


@click.group()
def bench() -> None:
    """(being built)"""
