"""``pytest --tolu-publish``: an inner pytest run (pytester) publishes its report.json to a real server.

The outer run's server and user (``tolu_client`` sets ``$TOLU_CONFIG``, which the in-process
inner run reads as a user's ``tolu login`` would leave it) receive the inner run; what the
server kept is read back through the API.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.fixtures_site import SiteHandle
from harness.publish import Publication, publish, target
from harness.report import printed_run_dir
from runner.client import Client

INNER = {
    "suites/server/test_inner_api.py": (
        "def test_ok():\n    pass\n\n"
        "def test_broken():\n    assert 2 + 2 == 5, 'arithmetic'\n"
    ),
    "suites/site/scheduler/test_inner_slurm.py": (
        "import pytest\n\n"
        "@pytest.mark.requires('unobtanium')\n"
        "def test_needs_it():\n    pass\n\n"
        "@pytest.mark.requires('unobtanium')\n"
        "def test_needs_it_too():\n    pass\n"
    ),
}


def _published_line(lines: list[str]) -> str:
    found = [line for line in lines if line.startswith("tolu published: ")]
    assert found, "\n".join(lines[-30:])
    return found[-1].removeprefix("tolu published: ")


def test_a_run_publishes_its_report_under_the_named_site(
    tree: pytest.Pytester, tolu_client: Client
) -> None:
    site = tolu_client.sites.create(name=f"s-{uuid.uuid4().hex[:6]}", path="/tmp/s", hostname="h")
    tolu_client.sites.create(name=f"other-{uuid.uuid4().hex[:6]}", path="/tmp/o", hostname="h")
    tree.makepyfile(**INNER)
    result = tree.runpytest("--tolu-publish", "--tolu-publish-site", site.name, "--location", "workstation")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    report = json.loads((printed_run_dir(result.stdout.lines) / "report.json").read_text())

    (run,) = tolu_client.runs.filter(site_id=site.id)
    assert _published_line(result.stdout.lines) == f"{tolu_client.url}/ui/runs/{run.id}"
    assert (run.kind, run.run_id, run.location) == ("tests", report["run_id"], "workstation")
    assert run.machine == socket.gethostname() and run.commit == report["environment"]["git_commit"]
    assert run.load == report["environment"]["load_average"] and len(run.load) == 3
    assert run.ok is False and run.title.startswith("pytest --tolu-publish")
    assert run.summary["passed"] == 1 and run.summary["failed"] == 1 and run.summary["skipped"] == 2
    areas = {a.area: a for a in run.areas}
    assert sorted(areas) == ["scheduler", "server", "site"]
    assert (areas["server"].outcome, areas["server"].failed) == ("failed", 1)
    assert (areas["scheduler"].outcome, areas["scheduler"].skipped) == ("skipped", 2)
    assert tolu_client.runs.document(run.id) == report

    cells = {c.area: c for c in tolu_client.runs.matrix(site_id=site.id).cells}
    (why,) = cells["server"].reasons
    assert why.outcome == "failed" and "arithmetic" in why.reason
    (skip,) = cells["site"].reasons
    assert skip.count == 2 and "unobtanium" in skip.reason

    # the same report again (a retry, `tolu`'s publish after a lost answer): the same run
    again = publish(target(site.name), Publication.of_report(report))
    assert again.id == run.id and len(tolu_client.runs.filter(site_id=site.id)) == 1


def test_a_site_directory_publishes_with_its_site_token(
    tree: pytest.Pytester, tolu_client: Client, tolu_site: SiteHandle
) -> None:
    tolu = [sys.executable, "-m", "runner.cli.main"]
    argv = [*tolu, "token", "create", "agent", "--site", str(tolu_site.path), "--save"]
    saved = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert saved.returncode == 0, saved.stderr
    assert (tolu_site.path / "credentials.yaml").is_file()
    tree.makepyfile(**{"suites/api/test_a.py": "def test_a():\n    pass\n"})
    result = tree.runpytest("--tolu-publish", f"--tolu-publish-site={tolu_site.path}")
    result.assert_outcomes(passed=1)
    (run,) = tolu_client.runs.filter(site_id=tolu_site.site.id)
    assert run.ok and [a.area for a in run.areas] == ["api"]
    assert _published_line(result.stdout.lines).endswith(f"/ui/runs/{run.id}")


def test_without_a_site_to_publish_under_the_run_does_not_start(
    tree: pytest.Pytester, tolu_client: Client
) -> None:
    tree.makepyfile(**{"suites/api/test_a.py": "def test_a():\n    pass\n"})
    result = tree.runpytest("--tolu-publish", "--tolu-publish-site", "no-such-site")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    refusal = "--tolu-publish: cannot publish: 'no-such-site' is neither a site directory nor one of your"
    assert any(refusal in line for line in result.errlines), result.errlines
    tolu_client.sites.create(name="a", path="/tmp/a", hostname="h")
    tolu_client.sites.create(name="b", path="/tmp/b", hostname="h")
    result = tree.runpytest("--tolu-publish")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("reaches 2 sites (a, b); name one" in line for line in result.errlines), result.errlines
    assert tolu_client.runs.filter() == []


def test_a_publication_that_fails_fails_the_run_and_keeps_the_report(
    tree: pytest.Pytester, tolu_client: Client, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    site_dir = tmp_path / "gone"
    site_dir.mkdir()
    (site_dir / "settings.yml").write_text(f"site_id: 7\nname: gone\nserver_url: http://127.0.0.1:{closed}\n")
    tree.makepyfile(**{"suites/api/test_a.py": "def test_a():\n    pass\n"})
    result = tree.runpytest("--tolu-publish", f"--tolu-publish-site={site_dir}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failed = [line for line in result.stdout.lines if line.startswith("tolu publish FAILED: ")]
    assert len(failed) == 1 and f"127.0.0.1:{closed}" in failed[0] and "site gone (id 7)" in failed[0]
    assert (printed_run_dir(result.stdout.lines) / "report.json").is_file()


def test_the_harness_stays_inert_about_publishing_when_off(pytester: pytest.Pytester) -> None:
    """A project that has not turned the harness on has no --tolu-publish at all."""
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest("--tolu-publish")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("unrecognized arguments: --tolu-publish" in line for line in result.errlines)
