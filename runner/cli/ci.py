"""`tolu ci` (being built)."""

import click


@click.group()
def ci() -> None:
    """(being built)"""
