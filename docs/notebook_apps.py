"""The python-function apps of docs/notebook.ipynb: copy this file into SITE/apps/ and
run ``tolu app sync --site SITE``."""

from runner.apps import python_app


@python_app
def square(x: int) -> int:
    """x squared."""
    return x * x


@python_app
def explode(message: str) -> None:
    """Always fails: shows what a failed python job looks like."""
    raise ValueError(message)
