"""Benchmark suite: pytest-benchmark micro-benchmarks and `tolu bench` itself.

pytest-benchmark's JSON is always written, into the run's artifact folder
(``artifacts/<run-id>/benchmark/pytest-benchmark[-<xdist worker>].json``) unless
``--benchmark-json`` names another file or ``--benchmark-disable`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.run import run_state


@pytest.fixture(scope="session", autouse=True)
def _benchmark_json_artifact(request: pytest.FixtureRequest) -> Iterator[None]:
    config = request.config
    session = getattr(config, "_benchmarksession", None)
    if session is None or config.getoption("benchmark_disable"):
        yield
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and session.disabled and session.xdist_warning:
        # pytest-benchmark switches itself off under xdist (timings would share the
        # CPUs). CI runs every suite with -n 2, and we still want the numbers and the
        # JSON artifact: each worker times its own benchmarks and writes its own file.
        session.disabled = False
    if not session.json and not session.disabled:
        folder = run_state(config).run_dir / "benchmark"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"pytest-benchmark-{worker}.json" if worker else "pytest-benchmark.json"
        # read by pytest-benchmark when the session finishes
        session.json = str(folder / name)
    yield
