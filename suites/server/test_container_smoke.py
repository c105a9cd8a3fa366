"""The API smoke tests (stepci workflows of ci/smoke/) against the live server container.

One test per workflow, so each lands in the run's JUnit and report by name; every step's
outcome and the counts (requests, failures, operations reached) go into the test's evidence
(artifacts/<run>/tests/<test>/logs/stepci-results.log, shown in report.html).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.container.server import ContainerServer
from harness.deploy import smoke
from harness.evidence import Evidence

pytestmark = [pytest.mark.requires("docker")]


@pytest.fixture(scope="module")
def container_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ContainerServer(tmp_path_factory.mktemp("smoke-container")) as server:
        yield server.url


@pytest.mark.parametrize("workflow", smoke.workflows(), ids=lambda p: p.stem)
def test_smoke_workflow_passes_against_the_container(
    container_url: str, workflow: Path, tolu_evidence: Evidence, tmp_path: Path
) -> None:
    result = smoke.run_smoke(container_url, [workflow])
    tolu_evidence.add_log("stepci results", smoke.write_log(result, tmp_path / "stepci-results.log"))
    print(f"{workflow.stem}: {result.summary()}")
    assert result.steps, f"{workflow.name} ran no step"
    assert result.ok, "\n\n".join(
        f"{s.test} / {s.name}:\n{s.why()}" for s in result.failures + result.skipped
    )
