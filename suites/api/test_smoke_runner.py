"""harness/deploy/smoke.py reads stepci's results honestly: a failed check is a failure with
its reason, the steps after it are skipped, and the counts add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.deploy import smoke
from harness.fixtures_server import ServerHandle

WRONG = """\
version: "1.1"
name: planted
config:
  http:
    baseURL: ${{ env.base }}
tests:
  planted:
    steps:
      - name: health is not a teapot
        http: {url: /health, method: GET, check: {status: 418}}
      - name: never sent
        http: {url: /health, method: GET, check: {status: 200}}
  fine:
    steps:
      - name: health
        http: {url: /health, method: GET, check: {status: 200, jsonpath: {$.status: ok}}}
"""


def test_a_failed_check_is_reported_with_its_reason(tolu_server: ServerHandle, tmp_path: Path) -> None:
    planted = tmp_path / "planted.yml"
    planted.write_text(WRONG)
    result = smoke.run_smoke(tolu_server.url, [planted])
    assert not result.ok
    (failed,) = result.failures
    assert failed.name == "health is not a teapot" and failed.status == 200
    assert "expected 418, got 200" in failed.why()
    assert [s.name for s in result.skipped] == ["never sent"]
    assert result.requests == 2  # the skipped step sent nothing
    assert result.reached == {("GET", "/health")}


def test_the_health_workflow_passes_against_a_process_server(tolu_server: ServerHandle) -> None:
    result = smoke.run_smoke(tolu_server.url, [smoke.workflow("health")])
    assert result.ok and result.requests == 3, result.summary()


def test_an_unknown_workflow_lists_the_known() -> None:
    with pytest.raises(smoke.SmokeError, match=r"known: .*jobs"):
        smoke.workflow("nope")
