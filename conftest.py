"""Root conftest of the tolu repository.

The harness itself is the pytest plugin ``harness.plugin``, loaded through the
``pytest11`` entry point of the installed package (so any project that installs
tolu gets it); nothing here duplicates it. ``pytester`` is enabled for the plugin's
own tests (suites/harness), which must be declared at the root.
"""

pytest_plugins = ["pytester"]
