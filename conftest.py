"""Root conftest of the tolu repository.

The harness itself is the pytest plugin ``harness.plugin``; the project turns it on
with ``tolu = true`` in ``[tool.pytest.ini_options]`` (the ``pytest_tolu`` switch,
installed as tolu's ``pytest11`` entry point); nothing here duplicates it.
``pytester`` is enabled for the plugin's own tests (suites/harness), which must be
declared at the root.
"""

pytest_plugins = ["pytester"]
