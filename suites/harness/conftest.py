"""The plugin tests itself with pytester: each test runs an inner pytest on a small tree."""

from __future__ import annotations

import hypothesis  # noqa: F401  (see below)
import matplotlib.pyplot  # noqa: F401
import pytest

# In-process inner runs drop every module they imported when they end. The hypothesis
# plugin imports hypothesis in each run's terminal summary (~4 s per inner run), and
# numpy (under matplotlib, for report.html) cannot be imported twice in one process.
# Imported here once, the inner runs find them loaded.

#: variables of the outer run that would change what an inner run detects or requires.
_OUTER_ENV = ("TOLU_REQUIRE", "TOLU_LOCATION", "TOLU_RUN_ID", "TOLU_PUBLISH_SITE", "CI", "GITHUB_ACTIONS")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OUTER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tree(pytester: pytest.Pytester) -> pytest.Pytester:
    """An inner project with the harness on: rootdir with a pytest.ini (tolu = true,
    testpaths=suites, strict markers)."""
    pytester.makeini(
        "[pytest]\ntolu = true\ntestpaths = suites\naddopts = --strict-markers -ra -p no:cacheprovider\n"
        # in-process inner runs import harness/runner again under pytest's rewrite hook
        "filterwarnings = ignore::pytest.PytestAssertRewriteWarning\n"
    )
    return pytester
