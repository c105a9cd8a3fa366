"""``tolu dag`` as a user types it, against a real server and a real launcher: define from
YAML (a new version only when it changed), ls, show (drawn by layers), run (--param,
--sweep, --instances), status (a run as a unit; a failure stays in its instance), kill of
one instance, runs, --json, and a bad DAG refused in one line."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from cli_helpers import background, make_site, ok, one_error

from runner.client import Client, JobsFailed

PIPELINE = textwrap.dedent("""\
    name: {name}
    description: greet, check, then greet again
    parameters: {{who: null, rc: 0}}
    nodes:
      - name: greet
        app: hello
        parameters: {{name: "{{who}}"}}
      - name: check
        app: fail
        parents: [greet]
        retry_limit: 0
        parameters: {{word: "{{who}}", rc: "{{rc}}"}}
      - name: again
        app: hello
        parents: [greet, check]
        parameters: {{name: "{{who}}, instance {{instance}}"}}
""")


@pytest.fixture
def site_dir(tolu_client: Client, tmp_path: Path) -> Path:
    return make_site(tolu_client, tmp_path / "site", f"dag-{tmp_path.name[-12:]}")


def test_define_show_run_status_kill(tolu_client: Client, site_dir: Path, tmp_path: Path) -> None:
    name = f"greet-{tmp_path.name[-8:]}"
    spec = tmp_path / "pipeline.yml"
    spec.write_text(PIPELINE.format(name=name))

    defined = ok("dag", "define", str(spec), "--site", str(site_dir)).strip()
    match = re.fullmatch(rf"Defined DAG {name} version 1 \(id (\d+)\): 3 nodes", defined)
    assert match, defined
    dag_id = int(match[1])
    assert ok("dag", "define", str(spec), "--site", str(site_dir)).strip() == (
        f"DAG {name} version 1 is unchanged (id {dag_id})"
    )
    spec.write_text(PIPELINE.format(name=name).replace("rc: 0}", "rc: 1}"))
    v2 = json.loads(ok("dag", "define", str(spec), "--site", str(site_dir), "--json"))
    assert v2["version"] == 2 and v2["parameters"] == {"who": None, "rc": 1}

    listed = [d for d in json.loads(ok("dag", "ls", "--json")) if d["name"] == name]
    assert [d["version"] for d in listed] == [2]
    every = [
        d["version"] for d in json.loads(ok("dag", "ls", "--all-versions", "--json")) if d["name"] == name
    ]
    assert every == [2, 1]

    drawn = ok("dag", "show", f"{name}:1").splitlines()
    assert drawn[0].startswith(f"DAG {name} version 1 (id {dag_id}, site ") and drawn[0].endswith(
        ": 3 nodes in 3 layers"
    )
    assert drawn[1] == "parameters: who (required), rc=0"
    assert drawn[3:10] == [
        "[greet: hello]",
        "      │",
        "      ▼",
        "[check: fail] ◀ greet",
        "      │",
        "      ▼",
        "[again: hello] ◀ greet, check",
    ]

    # two instances by --sweep (rc=0 from --param); one from a CSV row that fails its check
    rows = tmp_path / "instances.csv"
    rows.write_text("who,rc\nmallory,3\n")
    made = ok("dag", "run", f"{name}:1", "--sweep", "who=ada,grace", "--param", "rc=0").strip()
    match = re.fullmatch(
        rf"Run (\d+) of DAG {name} version 1: 2 instances, 6 jobs \(tags dag_run=\1, dag_instance=0\.\.1\)",
        made,
    )
    assert match, made
    good_run = int(match[1])
    bad_run = json.loads(ok("dag", "run", name, "--instances", str(rows), "--tag", "why=csv", "--json"))
    assert (bad_run["version"], bad_run["instances"], bad_run["jobs"]) == (2, 1, 3)
    assert bad_run["tags"] == {"why": "csv"}

    waiting = ok("dag", "status", str(good_run)).splitlines()
    assert waiting[1] == "instances: 2 waiting", waiting

    with background("launcher", "--site", str(site_dir), "--mode", "serial", "--max-idle-sec", "120"):
        done = tolu_client.dags.wait(good_run, timeout=600)
        assert {s.value: n for s, n in done.instances.items()} == {"finished": 2}
        with pytest.raises(JobsFailed) as failed:
            tolu_client.dags.wait(bad_run["id"], timeout=600)
    assert "exit code 3" in str(failed.value)

    screen = ok("dag", "status", str(good_run), "--detail").splitlines()
    assert screen[1:3] == ["instances: 2 finished", "jobs:      JOB_FINISHED 6"], screen
    assert [line.split()[:2] for line in screen[3:]] == [["0", "finished"], ["1", "finished"]]
    assert screen[3].endswith("(rc=0, who='ada')") and screen[4].endswith("(rc=0, who='grace')")
    again = tolu_client.dags.jobs(good_run, instance=1, node="again")
    assert [j.parameters for j in again] == [{"name": "grace, instance 1"}]

    # the failure stayed inside its instance: its check failed, the child failed with it
    status = json.loads(ok("dag", "status", str(bad_run["id"]), "--json"))
    assert status["instances"] == {"failed": 1}
    assert status["jobs"] == {"JOB_FINISHED": 1, "FAILED": 2}

    # kill one instance of a run that nothing launches: the other keeps its jobs
    third = json.loads(ok("dag", "run", name, "--sweep", "who=x,y", "--json"))
    assert ok("dag", "kill", str(third["id"]), "--instance", "1", "-y").strip() == (
        f"Killed 3 jobs of instance 1 of run {third['id']}"
    )
    after = json.loads(ok("dag", "status", str(third["id"]), "--json"))
    assert after["instances"] == {"waiting": 1, "killed": 1}
    assert json.loads(ok("dag", "kill", str(third["id"]), "--json")) == {"killed": 3}

    listed_runs = json.loads(ok("dag", "runs", name, "--json"))
    assert [r["id"] for r in listed_runs] == [third["id"], bad_run["id"], good_run]
    assert [r["version"] for r in listed_runs] == [2, 2, 1]


def test_a_bad_dag_or_run_is_one_line_naming_where(site_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yml"
    name = f"bad-{tmp_path.name[-8:]}"
    pipeline = PIPELINE.format(name=name)
    spec.write_text(pipeline.replace("word:", "wrod:"))
    assert one_error("dag", "define", str(spec), "--site", str(site_dir)) == (
        "Error: invalid request: body.nodes.1.parameters.wrod: app 'fail' has no parameter 'wrod' "
        "(its parameters: word='x', rc=3); did you mean 'word'?"
    )
    spec.write_text(pipeline.replace("parents: [greet, check]", "parents: [greet, chek]"))
    assert one_error("dag", "define", str(spec), "--site", str(site_dir)) == (
        "Error: invalid request: body.nodes.2.parents.1: no node named 'chek' in this DAG"
    )
    assert one_error("dag", "run", "no-such-dag") == "Error: no DAG named 'no-such-dag' (see `tolu dag ls`)"

    spec.write_text(pipeline)
    ok("dag", "define", str(spec), "--site", str(site_dir))
    assert one_error("dag", "run", name, "--param", "rc=1") == (
        f"Error: invalid request: body.instances.0.parameters: DAG {name!r} needs parameter who "
        "(its parameters: who (required), rc=0)"
    )
    assert one_error("dag", "run", name, "--sweep", "who=x,y", "--param", "bogus=1") == (
        f"Error: invalid request: body.instances.0.parameters.bogus: DAG {name!r} has no parameter 'bogus' "
        "(its parameters: who (required), rc=0)"
    )
    assert json.loads(ok("dag", "runs", name, "--json")) == []  # nothing was created
