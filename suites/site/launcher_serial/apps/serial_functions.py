"""Python-function apps for the launcher tests."""

from runner.apps import python_app


@python_app
def square(x: int) -> dict[str, int]:
    return {"square": x * x}


@python_app
def explode(message: str) -> None:
    raise ValueError(message)
