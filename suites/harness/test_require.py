"""location/requires marks skip with the reason; --require turns those skips into failures."""

from __future__ import annotations

import pytest

LAB = """
locations:
  - name: lab
    features: [unobtanium]
  - name: attic
    features: []
"""

TESTS = """
import pytest
from harness.run import run_state


@pytest.mark.requires("unobtanium")
def test_needs_unobtanium():
    pass


@pytest.mark.location("slurm-cluster", "pbs-cluster")
def test_only_on_clusters():
    pass


@pytest.fixture
def unobtanium(request):
    run_state(request.config).need("unobtanium")   # what the harness fixtures do
    return "here"


def test_fixture_needs_unobtanium(unobtanium):
    assert unobtanium == "here"


def test_plain():
    pass
"""


@pytest.fixture
def lab(tree: pytest.Pytester) -> pytest.Pytester:
    tree.makefile(".yaml", lab=LAB)
    tree.makepyfile(**{"suites/site/test_where.py": TESTS})
    return tree


def test_skipped_with_reason_in_summary(lab: pytest.Pytester) -> None:
    result = lab.runpytest("--locations", "lab.yaml", "--location", "attic")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines_random(
        [
            "SKIPPED [[]1[]] suites/site/test_where.py:*: requires unobtanium: unobtanium: not a feature of "
            "location 'attic' and no probe for it",
            "SKIPPED [[]1[]] suites/site/test_where.py:*: only at location slurm-cluster or pbs-cluster; "
            "this is 'attic'",
        ]
    )
    assert result.ret == pytest.ExitCode.OK


def test_runs_where_the_feature_is(lab: pytest.Pytester) -> None:
    result = lab.runpytest("--locations", "lab.yaml", "--location", "lab")
    result.assert_outcomes(passed=3, skipped=1)


def test_require_turns_skips_into_failures(lab: pytest.Pytester) -> None:
    result = lab.runpytest("--locations", "lab.yaml", "--location", "attic", "--require", "unobtanium")
    # the location mark still skips: a location is not a component
    result.assert_outcomes(passed=1, skipped=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_needs_unobtanium*",
            "required component missing (unobtanium in --require): unobtanium: not a feature of location*",
            "*ERROR at setup of test_fixture_needs_unobtanium*",
            "required component missing (unobtanium in --require): *",
            "*tolu: required components missing*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_require_from_environment(lab: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLU_REQUIRE", "unobtanium")
    result = lab.runpytest("--locations", "lab.yaml", "--location", "attic")
    result.assert_outcomes(passed=1, skipped=1, errors=2)
    result.stdout.fnmatch_lines(["tolu required: unobtanium -- MISSING: unobtanium"])


def test_missing_required_component_fails_the_run_even_if_no_test_needs_it(tree: pytest.Pytester) -> None:
    tree.makefile(".yaml", lab=LAB)
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    result = tree.runpytest("--locations", "lab.yaml", "--location", "attic", "--require", "unobtanium")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*tolu: required components missing*", "  unobtanium: not a feature*"])


def test_require_present_component_passes(lab: pytest.Pytester) -> None:
    result = lab.runpytest("--locations", "lab.yaml", "--location", "lab", "--require", "unobtanium")
    result.assert_outcomes(passed=3, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["tolu required: unobtanium (all present)"])


def test_unknown_required_feature_is_a_usage_error(tree: pytest.Pytester) -> None:
    tree.makepyfile(**{"suites/test_x.py": "def test_x(): pass"})
    result = tree.runpytest("--require", "dokcer")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--require: unknown feature 'dokcer' (known: *docker*)*"])
