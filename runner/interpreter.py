"""How tolu starts one of its own modules in a new Python process.

``python -m runner.server`` puts the working directory first on ``sys.path``: run
from a directory that holds another ``runner/`` (or ``harness/``) package, the child
imports that one instead of this tolu (``module 'runner' has no attribute
'__version__'``). ``-P`` (Python 3.11+) leaves the working directory out; the
installed packages and ``$PYTHONPATH`` still count. Every process tolu starts with
a module of its own goes through here.
"""

from __future__ import annotations

import sys


def module_command(module: str, *, python: str | None = None) -> list[str]:
    """``python -P -m module``: run ``module`` of this tolu, whatever the working directory holds.

    ``python`` defaults to the running interpreter (the one this tolu is installed in).
    """
    return [python or sys.executable, "-P", "-m", module]
