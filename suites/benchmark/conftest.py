"""Benchmark suite: pytest-benchmark micro-benchmarks and `tolu bench` itself.

pytest-benchmark's JSON is always written, into the run's artifact folder
(``artifacts/<run-id>/benchmark/pytest-benchmark.json``) unless
``--benchmark-json`` names another file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.run import run_state


@pytest.fixture(scope="session", autouse=True)
def _benchmark_json_artifact(request: pytest.FixtureRequest) -> Iterator[None]:
    session = getattr(request.config, "_benchmarksession", None)
    if session is not None and not session.json and not session.disabled:
        folder = run_state(request.config).run_dir / "benchmark"
        folder.mkdir(parents=True, exist_ok=True)
        # read by pytest-benchmark when the session finishes
        session.json = str(folder / "pytest-benchmark.json")
    yield
