"""docs/notebook.ipynb runs as it is, with nbclient, against a real server, site and
launcher, and each checked cell shows what the page promises."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from cli_helpers import make_site, ok
from nbclient import NotebookClient

from runner.client import Client

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _outputs(nb: Any) -> dict[str, dict[str, str]]:
    """tag -> {"text/plain", "text/html", "stream"} of the tagged cells."""
    out: dict[str, dict[str, str]] = {}
    for cell in nb.cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            shown: dict[str, str] = {}
            for o in cell.get("outputs", []):
                if o["output_type"] == "stream":
                    shown["stream"] = shown.get("stream", "") + o["text"]
                for kind in ("text/plain", "text/html"):
                    if kind in o.get("data", {}):
                        shown[kind] = o["data"][kind]
            out[tag] = shown
    return out


def test_the_example_notebook_runs_against_a_real_server_and_launcher(
    tolu_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tolu_client, tmp_path / "site", f"nb-{tmp_path.name[-10:]}")
    shutil.copy(DOCS / "notebook_apps.py", site / "apps" / "notebook_apps.py")
    ok("app", "sync", "--site", str(site))
    monkeypatch.setenv("TOLU_SITE", str(site))
    nb = nbformat.read(DOCS / "notebook.ipynb", as_version=4)
    runner = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        runner.execute()
    finally:
        nbformat.write(nb, tmp_path / "notebook.executed.ipynb")  # kept with the test's tmp dir
    shown = _outputs(nb)

    assert shown["apps"]["text/plain"] == "['explode', 'fail', 'hello', 'square']"
    app_html = shown["app-html"]["text/html"]
    assert "app square" in app_html and "(python function)" in app_html and "gAS" not in app_html
    assert shown["result"]["text/plain"] == "49"
    assert shown["as-completed"]["text/plain"] == "True"
    assert shown["map-results"]["text/plain"] == "[0, 1, 4, 9, 16]"
    failed = shown["job-failed"]["stream"].splitlines()
    assert failed[0].startswith("ValueError: the input was empty")
    assert failed[1].startswith(f"output: {site}/data/explode/") and failed[1].endswith("/job.out")
    assert failed[2] == "ValueError: the input was empty"
    table = shown["job-list"]["text/html"]
    assert "background:#fde8e8" in table and "ValueError: the input was empty" in table and "gAS" not in table
    assert shown["pandas"]["text/plain"] == "{'FAILED': 1, 'JOB_FINISHED': 6}"
    assert shown["throughput"]["text/plain"] == "6"
    assert shown["utilization"]["text/plain"] == "True"
    assert "DAG greetings v1" in shown["dag"]["text/html"]
    assert shown["dag-run"]["text/plain"] == "{'finished': 3}"
    assert shown["dag-params"]["text/plain"] == "{'name': 'edsger, instance 2'}"
