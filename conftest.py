"""Root conftest of the tolu repository.

The harness itself is the pytest plugin ``harness.plugin``; the project turns it on
with ``tolu = true`` in ``[tool.pytest.ini_options]`` (the ``pytest_tolu`` switch,
installed as tolu's ``pytest11`` entry point); nothing here duplicates it.
``pytester`` is enabled for the plugin's own tests (suites/harness), which must be
declared at the root.
"""

import os

pytest_plugins = ["pytester"]

# Every server the suites start hashes passwords at argon2's lowest cost (0.2 ms instead
# of 0.2 s of CPU: each test registers and logs in a user of its own), as Django's docs
# advise for test runs. The default cost is tested where it is set
# (suites/server/test_password_hash.py), and the server container runs with it.
os.environ.setdefault("TOLU_PASSWORD_HASH", "m=8,t=1,p=1")
