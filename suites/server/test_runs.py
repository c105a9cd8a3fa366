"""Published runs on a real server (SQLite and PostgreSQL): publish, idempotence, schema checks,
filters, the site x area matrix, benchmark trends, and that a site's runs stay its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import run_documents as docs
from auth_helpers import create_token, exchange
from server_helpers import Raw

from runner.client import Client
from runner.client.errors import Conflict, NotFound
from runner.models import Site, scenario_key

ROOT = Path(__file__).resolve().parents[2]
COPIES = {
    "report.schema.json": ROOT / "harness" / "report.schema.json",
    "bench.schema.json": ROOT / "harness" / "bench" / "bench.schema.json",
    "pipeline.schema.json": ROOT / "harness" / "pipeline" / "report.schema.json",
}


def _site(client: Client) -> Site:
    return client.sites.create(name=f"site-{uuid.uuid4().hex[:8]}", path="/tmp/site", hostname="node1")


def _mixed_tests() -> list[dict[str, Any]]:
    r = docs.record
    return [
        r("suites/server/test_a.py::test_ok", "passed", ["server"]),
        r("suites/server/test_a.py::test_broken", "failed", ["server"], "AssertionError: 2 != 3"),
        r("suites/site/scheduler/test_s.py::test_slurm", "skipped", ["site", "scheduler"], "slurm is absent"),
        r("suites/site/scheduler/test_s.py::test_pbs", "skipped", ["site", "scheduler"], "slurm is absent"),
        r("suites/site/test_agent.py::test_agent", "passed", ["site"]),
        r("suites/api/test_c.py::test_known_bug", "xfailed", ["api"], "issue 99"),
        r("suites/test_loose.py::test_nowhere", "passed", []),
    ]


def test_the_servers_schema_copies_are_the_harnesss() -> None:
    """runner/server/results/schemas holds copies (the runner never imports the harness)."""
    here = ROOT / "runner" / "server" / "results" / "schemas"
    for name, original in COPIES.items():
        assert (here / name).read_text() == original.read_text(), (
            f"runner/server/results/schemas/{name} differs from {original.relative_to(ROOT)}: copy it again"
        )


def test_publish_a_test_run_then_again_is_the_same_run(tolu_client: Client, raw: Raw) -> None:
    site = _site(tolu_client)
    document = docs.report(f"r-{uuid.uuid4().hex[:6]}", _mixed_tests())
    body = docs.envelope(site.id, "tests", document)

    first = raw("POST", "/runs", json=body)
    assert first.status_code == 201, first.text
    run = first.json()
    assert (run["site_id"], run["kind"], run["run_id"]) == (site.id, "tests", document["run_id"])
    assert (run["location"], run["machine"], run["load"]) == ("ci-runner", "node1", [0.5, 0.4, 0.3])
    assert run["commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert run["ok"] is False and run["title"] == "pytest -m server" and run["duration_s"] == 300.0
    assert run["summary"] == {
        "total": 7, "passed": 3, "failed": 1, "error": 0, "skipped": 2, "xfailed": 1, "xpassed": 0,
    }  # fmt: skip
    areas = {a["area"]: a for a in run["areas"]}
    assert sorted(areas) == ["api", "other", "scheduler", "server", "site"]
    assert (areas["server"]["outcome"], areas["server"]["passed"], areas["server"]["failed"]) == (
        "failed",
        1,
        1,
    )
    assert (areas["scheduler"]["outcome"], areas["scheduler"]["skipped"]) == ("skipped", 2)
    assert (areas["site"]["outcome"], areas["site"]["total"]) == ("passed", 3)
    assert areas["api"]["outcome"] == "passed", "an expected failure is not a failure"

    again = raw("POST", "/runs", json=body)
    assert again.status_code == 200 and again.json() == run
    assert tolu_client.runs.get(run["id"]).run_id == document["run_id"]
    assert tolu_client.runs.document(run["id"]) == document
    assert len(tolu_client.runs.filter(site_id=site.id)) == 1


def test_the_same_run_id_with_another_document_is_a_conflict(tolu_client: Client, raw: Raw) -> None:
    site = _site(tolu_client)
    tests = _mixed_tests()
    document = docs.report("nightly-1", tests)
    assert raw("POST", "/runs", json=docs.envelope(site.id, "tests", document)).status_code == 201
    changed = docs.report("nightly-1", tests[:-1])
    answer = raw("POST", "/runs", json=docs.envelope(site.id, "tests", changed))
    assert answer.status_code == 409
    assert "'nightly-1'" in answer.json()["detail"] and "another document" in answer.json()["detail"]
    # the same run id under another site is another run
    other = _site(tolu_client)
    assert raw("POST", "/runs", json=docs.envelope(other.id, "tests", changed)).status_code == 201
    with pytest.raises(Conflict):
        tolu_client.runs.publish(
            site_id=site.id, kind="pipeline", run_id="nightly-1", location="x", machine="y",
            started_at=docs.T0, document=docs.pipeline("nightly-1"),
        )  # fmt: skip
    assert [r.run_id for r in tolu_client.runs.filter(site_id=site.id)] == ["nightly-1"]


def test_a_document_that_breaks_its_schema_is_a_422_naming_the_place(tolu_client: Client, raw: Raw) -> None:
    site = _site(tolu_client)
    document = docs.report("bad-1", _mixed_tests())
    document["tests"][1]["outcome"] = "exploded"
    del document["environment"]["hostname"]
    answer = raw("POST", "/runs", json=docs.envelope(site.id, "tests", document))
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    locs = [e["loc"] for e in errors]
    assert ["body", "document", "tests", 1, "outcome"] in locs
    assert ["body", "document", "environment"] in locs
    assert any("'hostname' is a required property" in e["msg"] for e in errors)
    assert all("report.schema.json" in e["msg"] for e in errors)
    # a bench.json sent as a test run is checked against the report's schema
    answer = raw(
        "POST",
        "/runs",
        json=docs.envelope(site.id, "tests", docs.bench({"serial": {"ratio_run": 1.0}}), run_id="b"),
    )
    assert answer.status_code == 422
    assert tolu_client.runs.filter(site_id=site.id) == [], "nothing is kept of a refused run"


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"run_id": "a/b"}, ["body", "run_id"]),
        ({"run_id": ""}, ["body", "run_id"]),
        ({"kind": "junit"}, ["body", "kind"]),
        ({"location": ""}, ["body", "location"]),
        ({"load": [1, 2, 3, 4]}, ["body", "load"]),
        ({"started_at": "yesterday"}, ["body", "started_at"]),
        ({"document": []}, ["body", "document"]),
        ({"extra": 1}, ["body", "extra"]),
    ],
)
def test_a_bad_envelope_is_a_422_naming_the_field(
    tolu_client: Client, raw: Raw, change: dict[str, Any], loc: list[Any]
) -> None:
    site = _site(tolu_client)
    body = {**docs.envelope(site.id, "pipeline", docs.pipeline("p-1")), **change}
    answer = raw("POST", "/runs", json=body)
    assert answer.status_code == 422, answer.text
    assert loc in [e["loc"] for e in answer.json()["detail"]]


def test_runs_are_kept_under_the_callers_own_sites(tolu_client: Client, raw: Raw, make_user: Any) -> None:
    site = _site(tolu_client)
    other_user = make_user()
    theirs = _site(other_user)
    body = docs.envelope(theirs.id, "pipeline", docs.pipeline("p-2"))
    assert raw("POST", "/runs", json=body).status_code == 404
    assert raw("POST", "/runs", json={**body, "site_id": 2**31 - 1}).status_code == 404
    mine = raw("POST", "/runs", json={**body, "site_id": site.id}).json()
    for path in (f"/runs/{mine['id']}", f"/runs/{mine['id']}/document"):
        assert Raw(other_user.url, other_user.token or "")("GET", path).status_code == 404
    assert other_user.runs.filter() == []
    assert other_user.runs.matrix().cells == []


def test_a_site_token_publishes_and_sees_only_its_site(tolu_client: Client, raw: Raw) -> None:
    a, b = _site(tolu_client), _site(tolu_client)
    access = tolu_client.token or ""
    token_a = exchange(
        tolu_client.url, create_token(tolu_client.url, access, scope="site", site_id=a.id)["token"]
    )
    as_a = Raw(tolu_client.url, token_a)
    run_b = raw("POST", "/runs", json=docs.envelope(b.id, "pipeline", docs.pipeline("p-b"))).json()
    assert (
        as_a("POST", "/runs", json=docs.envelope(b.id, "pipeline", docs.pipeline("p-x"))).status_code == 404
    )
    published = as_a("POST", "/runs", json=docs.envelope(a.id, "pipeline", docs.pipeline("p-a")))
    assert published.status_code == 201
    listed = as_a("GET", "/runs").json()
    assert [r["run_id"] for r in listed["results"]] == ["p-a"] and listed["count"] == 1
    assert as_a("GET", f"/runs/{run_b['id']}").status_code == 404
    assert as_a("DELETE", f"/runs/{run_b['id']}").status_code == 404
    assert {row["site_id"] for row in as_a("GET", "/runs/matrix").json()["rows"]} == {a.id}
    read_only = exchange(tolu_client.url, create_token(tolu_client.url, access, scope="read")["token"])
    refused = Raw(tolu_client.url, read_only)(
        "POST", "/runs", json=docs.envelope(a.id, "pipeline", docs.pipeline("p-r"))
    )
    assert refused.status_code == 403


def test_filters_by_site_location_area_commit_kind_and_date(tolu_client: Client, raw: Raw) -> None:
    a, b = _site(tolu_client), _site(tolu_client)
    r = docs.record
    day = timedelta(days=1)
    published = {}
    for name, site, location, commit, start, tests in (
        ("n1", a, "ci-runner", "aaaa1111", docs.T0, [r("t::a", "passed", ["server"])]),
        ("n2", a, "cluster", "bbbb2222", docs.T0 + day, [r("t::b", "failed", ["scheduler"], "boom")]),
        ("n3", b, "ci-runner", "aaaa3333", docs.T0 + 2 * day, [r("t::c", "passed", ["server", "api"])]),
    ):
        body = docs.envelope(
            site.id,
            "tests",
            docs.report(name, tests, start=start),
            location=location,
            commit=commit,
            started_at=start,
        )
        published[name] = raw("POST", "/runs", json=body).json()
    pipeline = docs.envelope(b.id, "pipeline", docs.pipeline("p1"), started_at=docs.T0 + 3 * day, commit=None)
    assert raw("POST", "/runs", json=pipeline).status_code == 201

    def ids(**query: Any) -> list[str]:
        return [run.run_id for run in tolu_client.runs.filter(**query)]

    assert ids() == ["p1", "n3", "n2", "n1"], "newest first"
    assert ids(ordering="started_at") == ["n1", "n2", "n3", "p1"]
    assert ids(site_id=a.id) == ["n2", "n1"]
    assert ids(location="ci-runner") == ["p1", "n3", "n1"]
    assert ids(area="server") == ["n3", "n1"]
    assert ids(area="api", site_id=a.id) == []
    assert ids(area="pipeline") == ["p1"]
    assert ids(commit="aaaa") == ["n3", "n1"]
    assert ids(commit="bbbb2222") == ["n2"]
    assert ids(kind="pipeline") == ["p1"]
    assert ids(ok=False) == ["n2"]
    assert ids(after=docs.T0 + day) == ["p1", "n3", "n2"]
    assert ids(after=docs.T0 + day, before=docs.T0 + 2 * day) == ["n2"]
    assert ids(run_id="n2") == ["n2"]
    page = tolu_client.runs.page(limit=2, offset=1)
    assert page.count == 4 and [run.run_id for run in page.results] == ["n3", "n2"]
    assert raw("GET", "/runs?commit=aa").status_code == 422
    answer = raw("GET", "/runs", params={"after": "2026-11-21T00:00:00Z", "before": "2026-11-20T00:00:00Z"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "after"]
    assert raw("GET", "/runs?ordering=title").status_code == 422


def test_the_matrix_shows_each_nights_last_run_per_site_and_area(tolu_client: Client, raw: Raw) -> None:
    a, b = _site(tolu_client), _site(tolu_client)
    r = docs.record
    night1, night2 = docs.T0, docs.T0 + timedelta(days=1)
    early = [r("t::x", "failed", ["server"], "AssertionError: first try"), r("t::y", "passed", ["api"])]
    late = [r("t::x", "passed", ["server"])]  # the rerun the same night: server passes
    skips = [r(f"t::s{i}", "skipped", ["scheduler"], "slurm is absent") for i in range(3)]
    for name, site, start, tests in (
        ("a1", a, night1, early),
        ("a2", a, night1 + timedelta(hours=2), late),
        ("a3", a, night2, [*late, *skips]),
        ("b1", b, night2 + timedelta(hours=1), [r("t::z", "error", ["server"], "fixture broke")]),
    ):
        doc = docs.report(name, tests, start=start)
        assert (
            raw("POST", "/runs", json=docs.envelope(site.id, "tests", doc, started_at=start)).status_code
            == 201
        )

    matrix = tolu_client.runs.matrix(after=night1 - timedelta(hours=2), before=night2 + timedelta(hours=20))
    assert [str(n) for n in matrix.nights] == ["2026-11-21", "2026-11-20"]
    assert {(row.site_id, row.location) for row in matrix.rows} == {(a.id, "ci-runner"), (b.id, "ci-runner")}
    assert {row.site_name for row in matrix.rows} == {a.name, b.name}
    assert matrix.areas == ["api", "scheduler", "server"]
    cells = {(c.site_id, str(c.night), c.area): c for c in matrix.cells}
    server_a1 = cells[(a.id, "2026-11-20", "server")]
    assert (server_a1.run_id, server_a1.outcome, server_a1.passed) == ("a2", "passed", 1), (
        "the night's last run"
    )
    api_a1 = cells[(a.id, "2026-11-20", "api")]
    assert (api_a1.run_id, api_a1.outcome) == ("a1", "passed"), (
        "an area the last run did not cover: the run that did"
    )
    sched = cells[(a.id, "2026-11-21", "scheduler")]
    assert (sched.outcome, sched.skipped) == ("skipped", 3)
    assert [(x.outcome, x.reason, x.count) for x in sched.reasons] == [("skipped", "slurm is absent", 3)]
    assert sched.reasons[0].names == ["t::s0", "t::s1", "t::s2"] and sched.more_reasons == 0
    broken = cells[(b.id, "2026-11-21", "server")]
    assert (broken.outcome, broken.error) == ("failed", 1)
    assert broken.reasons[0].reason == "fixture broke" and broken.reasons[0].outcome == "error"
    assert len(matrix.cells) == 5

    midnight = datetime(2026, 11, 20, tzinfo=UTC)
    only_b = tolu_client.runs.matrix(site_id=b.id, after=midnight, before=midnight + timedelta(days=2))
    assert {c.site_id for c in only_b.cells} == {b.id} and len(only_b.nights) == 2
    too_long = raw(
        "GET", "/runs/matrix", params={"after": "2026-01-01T00:00:00Z", "before": "2026-12-01T00:00:00Z"}
    )
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["query", "after"]
    default = tolu_client.runs.matrix()
    assert len(default.nights) == 14 and default.nights[0] == datetime.now(UTC).date()


def test_failure_reasons_are_pytests_E_line(tolu_client: Client, raw: Raw) -> None:
    site = _site(tolu_client)
    tests = [docs.record(f"t::f{i}", "failed", ["server"], f"AssertionError: case {i}") for i in range(60)]
    run = raw("POST", "/runs", json=docs.envelope(site.id, "tests", docs.report("many", tests))).json()
    cell = tolu_client.runs.matrix(
        after=docs.T0 - timedelta(days=1), before=docs.T0 + timedelta(days=1)
    ).cells[0]
    assert cell.run == run["id"] and cell.failed == 60
    assert len(cell.reasons) == 50 and cell.more_reasons == 10
    assert cell.reasons[0].reason == "AssertionError: case 0"


def test_bench_runs_give_scenarios_trends_and_the_bench_area(tolu_client: Client, raw: Raw) -> None:
    site = _site(tolu_client)
    day = timedelta(days=1)
    ratios = [0.9, 0.85, 0.7, 0.88]
    for i, ratio in enumerate(ratios):
        doc = docs.bench(
            {
                "serial": {
                    "ratio_run": ratio,
                    "run_jobs_per_s": 400 * ratio,
                    "baseline_pool_jobs_per_s": 400.0,
                },
                "mpi": {"ratio_run": 0.95, "run_jobs_per_s": 50.0},
            },
            created_at=docs.T0 + i * day,
        )
        where = "cluster" if i == 3 else "ci-runner"
        body = docs.envelope(
            site.id, "bench", doc, run_id=f"bench-{i}", location=where, started_at=docs.T0 + i * day
        )
        assert raw("POST", "/runs", json=body).status_code == 201, body

    key = scenario_key("throughput", "serial", {"mode": "serial", "jobs": 200, "workers": 2})
    scenarios = {s.key: s for s in tolu_client.runs.scenarios()}
    assert set(scenarios) == {
        key,
        scenario_key("throughput", "mpi", {"mode": "mpi", "jobs": 200, "workers": 2}),
    }
    serial = scenarios[key]
    assert (serial.command, serial.name, serial.runs) == ("throughput", "serial", 4)
    assert sorted(serial.locations) == ["ci-runner", "cluster"] and serial.site_ids == [site.id]
    assert serial.description == "200 `true` jobs, serial mode, 2 slots"

    trend = tolu_client.runs.trend(key, location="ci-runner")
    assert trend.scenario is not None and trend.scenario.key == key
    assert [p.run_id for p in trend.points] == ["bench-0", "bench-1", "bench-2"], "oldest first"
    assert [p.figures["ratio_run"].median for p in trend.points] == [0.9, 0.85, 0.7]
    assert trend.points[0].figures["ratio_run"].min == pytest.approx(0.81)
    assert trend.figure_info["ratio_run"].aim == ">= 0.8" and trend.figure_info["ratio_run"].unit == "ratio"
    assert trend.figure_info["baseline_pool_jobs_per_s"].better == "none"
    last_two = tolu_client.runs.trend(key, location="ci-runner", limit=2, figures=["ratio_run"])
    assert [p.run_id for p in last_two.points] == ["bench-1", "bench-2"]
    assert set(last_two.points[0].figures) == {"ratio_run"}
    before = tolu_client.runs.trend(key, before=docs.T0 + 2 * day)
    assert [p.run_id for p in before.points] == ["bench-0", "bench-1"]
    assert tolu_client.runs.trend("throughput:serial:000000000000").points == []

    runs = {run.run_id: run for run in tolu_client.runs.filter(kind="bench")}
    assert runs["bench-2"].ok is False and runs["bench-0"].ok is True
    (area,) = runs["bench-2"].areas
    assert (area.area, area.outcome, area.passed, area.failed) == ("bench", "failed", 1, 1)
    cell = next(
        c
        for c in tolu_client.runs.matrix(after=docs.T0, before=docs.T0 + 4 * day).cells
        if c.run_id == "bench-2"
    )
    assert cell.reasons[0].reason == "ratio_run median 0.7 (aim >= 0.8)" and cell.reasons[0].names == [
        "serial: ratio_run"
    ]
    assert runs["bench-2"].summary == {"scenarios": 2, "aims": 2, "met": 1, "missed": 1, "regressed": 0}
    assert [s.name for s in runs["bench-2"].scenarios] == ["mpi", "serial"]


def test_a_pipeline_run_is_one_area_of_steps_and_findings(tolu_client: Client, raw: Raw) -> None:
    site = _site(tolu_client)
    doc = docs.pipeline("integration-1", failed_step=8, findings=[("stuck", "job 3 never ended")])
    run = raw("POST", "/runs", json=docs.envelope(site.id, "pipeline", doc)).json()
    assert run["title"] == "tolu ci integration --server process --scheduler local"
    assert run["ok"] is False and run["summary"] == {"steps": 11, "steps_failed": 1, "findings": 1}
    (area,) = run["areas"]
    assert (area["area"], area["passed"], area["failed"]) == ("pipeline", 10, 2)
    cell = tolu_client.runs.matrix(after=docs.T0, before=docs.T0 + timedelta(days=1)).cells[0]
    assert {(x.reason, tuple(x.names)) for x in cell.reasons} == {
        ("step 8 broke", ("step 8: step number 8",)),
        ("[stuck] job 3 never ended", ("job 3",)),
    }


def test_deleting_a_run_or_its_site_removes_what_was_taken_from_it(tolu_client: Client, raw: Raw) -> None:
    site = _site(tolu_client)
    doc = docs.bench({"serial": {"ratio_run": 0.9}})
    run = raw("POST", "/runs", json=docs.envelope(site.id, "bench", doc, run_id="gone")).json()
    key = run["scenarios"][0]["key"]
    tolu_client.runs.delete(run["id"])
    with pytest.raises(NotFound):
        tolu_client.runs.get(run["id"])
    assert tolu_client.runs.trend(key).points == [] and tolu_client.runs.scenarios() == []
    run = raw("POST", "/runs", json=docs.envelope(site.id, "bench", doc, run_id="gone")).json()
    tolu_client.sites.delete(site.id)
    assert tolu_client.runs.filter() == [] and tolu_client.runs.scenarios() == []
    assert raw("GET", f"/runs/{run['id']}/document").status_code == 404
