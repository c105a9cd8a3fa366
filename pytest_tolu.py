"""tolu's pytest11 entry point: the switch that turns the tolu harness on, and nothing else.

pytest loads this module into every run of every project that has tolu installed, so
it imports nothing but pytest and only adds the switch: ``--tolu`` and the ini key
``tolu``. The harness itself (``harness.plugin``: its options, markers, fixtures,
location probes, artifacts, the ``--junitxml`` default and the header lines) is
loaded only when a project asks for it, before the command line is parsed, as
pytest-django loads its settings:

- ``tolu = true`` in the ini file (``[tool.pytest.ini_options]``, ``pytest.ini``, ...),
- ``--tolu`` on the command line (or in ``addopts``),
- ``-p harness.plugin``, or ``pytest_plugins = ["harness.plugin"]`` in the root
  ``conftest.py`` (pytest loads it then without this module).

The module's name is one that no project's own package takes: with ``python -m
pytest`` the working directory comes first on ``sys.path``, and a project's own
``harness/`` there would break a switch that lived in tolu's ``harness`` package.
"""

from __future__ import annotations

import pytest

#: the harness, imported only when switched on.
PLUGIN = "harness.plugin"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("tolu", "tolu harness").addoption(
        "--tolu",
        action="store_true",
        default=False,
        help="turn the tolu harness on for this run (ini: tolu = true; see tolu's docs/harness.md).",
    )
    parser.addini("tolu", type="bool", default=False, help="turn the tolu harness on (harness.plugin).")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Load the harness before conftests and before the full command line is parsed,
    so that its options (``--server``, ``--location``, ...) are known by then."""
    if early_config.known_args_namespace.tolu or early_config.getini("tolu"):
        early_config.pluginmanager.import_plugin(PLUGIN)
