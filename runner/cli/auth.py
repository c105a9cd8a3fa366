"""`tolu register` (being built)."""

import click


@click.group()
def register() -> None:
    """(being built)"""


@click.group()
def login() -> None:
    """(being built)"""
