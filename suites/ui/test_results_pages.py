"""The results pages in Debian's Chromium (docs/results.md): a real harness run published by
``pytest --tolu-publish`` shows in the site x area matrix with its failure and skip reasons,
its cell leads to the run's report, and published benchmark runs draw a trend with the aim
line and the in-run baseline. Screenshots in ``<run>/screenshots/``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from ui_helpers import UiUser, login

from harness.bench.machine import collect
from harness.bench.schema import BenchResult, FigureInfo, Scenario, Stat
from harness.publish import Publication, publish, target
from runner.client import Client

#: an inner project: one area with a failure, one whose tests are all skipped
INNER = {
    "pytest.ini": "[pytest]\ntolu = true\ntestpaths = suites\naddopts = -p no:cacheprovider\n",
    "suites/server/test_api.py": (
        "def test_ok():\n    pass\n\ndef test_broken():\n    assert 2 + 2 == 5, 'arithmetic went wrong'\n"
    ),
    "suites/site/test_rare.py": (
        "import pytest\n\n@pytest.mark.requires('unobtanium')\ndef test_needs_it():\n    pass\n"
    ),
}
#: a night's ratio each: the fourth sank
NIGHTS = (0.92, 0.9, 0.91, 0.6)
#: outer-run variables an inner run must not inherit
OUTER_ENV = (
    "TOLU_REQUIRE",
    "TOLU_LOCATION",
    "TOLU_RUN_ID",
    "TOLU_PUBLISH_SITE",
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
)


def _publish_a_test_run(site: str, where: Path) -> None:
    for name, text in INNER.items():
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in OUTER_ENV}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "--tolu-publish",
        f"--tolu-publish-site={site}",
        "--location",
        "workstation",
    ]
    done = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"  # test_broken failed
    assert "tolu published: " in done.stdout, done.stdout[-3000:]


def _bench(ratio: float, at: datetime) -> BenchResult:
    info = {
        "ratio_run": FigureInfo(unit="ratio", better="higher", aim=">= 0.8"),
        "jobs_per_s": FigureInfo(unit="jobs/s", better="higher"),
    }
    figures = {"ratio_run": ratio, "jobs_per_s": 300 * ratio}
    scenario = Scenario(
        name="serial",
        description="300 `true` jobs, serial mode",
        parameters={"mode": "serial", "jobs": 300},
        figure_info=info,
        summary={k: Stat(min=v, median=v, max=v, values=[v]) for k, v in figures.items()},
    )
    return BenchResult(
        command="throughput",
        argv=["tolu", "bench", "throughput"],
        created_at=at,
        seconds=1.0,
        machine=collect(),
        parameters={},
        scenarios=[scenario],
    )


def test_the_matrix_and_the_trends(
    page: Any, shot: Any, ui_user: UiUser, tolu_client: Client, tmp_path: Path
) -> None:
    site = tolu_client.sites.create(name=f"night-{uuid.uuid4().hex[:6]}", path="/tmp/n", hostname="h")
    _publish_a_test_run(site.name, tmp_path)
    start = datetime.now(UTC) - timedelta(days=len(NIGHTS))
    to = target(site.name)
    for day, ratio in enumerate(NIGHTS):
        publish(to, Publication.of_bench(_bench(ratio, start + timedelta(days=day)), location="workstation"))

    login(page, ui_user)
    page.get_by_test_id("nav-results").click()
    matrix = page.get_by_test_id("results-matrix")
    expect(matrix).to_be_visible()
    server = page.get_by_test_id(f"cell-{site.name}-workstation-server")
    expect(server).to_have_attribute("data-outcome", "failed")
    row = page.get_by_test_id(f"matrix-row-{site.name}-workstation")
    expect(row).to_contain_text("1 passed, 1 failed")
    expect(row).to_contain_text("arithmetic went wrong")
    expect(page.get_by_test_id(f"cell-{site.name}-workstation-site")).to_have_attribute(
        "data-outcome", "skipped"
    )
    expect(row).to_contain_text("unobtanium")
    shot("results-matrix")

    # drill down: the run behind the cell
    server.click()
    expect(page).to_have_url(re.compile(r"/ui/runs/\d+$"))
    expect(page.get_by_test_id("run-verdict")).to_have_text("failed")
    expect(page.get_by_test_id("run-area-server")).to_contain_text("1 passed, 1 failed")
    tests = page.get_by_test_id("run-tests")
    expect(tests).to_contain_text("test_broken")
    expect(tests).to_contain_text("arithmetic went wrong")
    expect(tests).to_contain_text("unobtanium")
    shot("results-run")

    # the benchmark nights: a trend per ratio, the aim and the in-run baseline drawn with it
    page.get_by_test_id("nav-trends").click()
    ratio = page.get_by_test_id("trend-ratio_run")
    expect(ratio).to_contain_text("aim >= 0.8")
    expect(ratio.locator(".time-chart")).to_have_attribute("data-points", str(len(NIGHTS)))
    for label in ("ratio_run (median)", "aim >= 0.8", "in-run baseline (1.0)"):
        expect(ratio.locator(".u-legend")).to_contain_text(label)
    expect(page.get_by_test_id("trend-jobs_per_s")).to_have_count(0)  # ratios only, unless asked
    runs = page.get_by_test_id("trends-runs").locator("tbody tr")
    expect(runs).to_have_count(len(NIGHTS))
    expect(runs.first).to_contain_text("0.600")  # newest first: the night that sank
    shot("results-trends")
    page.get_by_test_id("trends-all").locator("input").check()
    expect(page.get_by_test_id("trend-jobs_per_s")).to_be_visible()
