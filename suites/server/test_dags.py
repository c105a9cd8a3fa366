"""DAG prototypes on SQLite and PostgreSQL: defined once and versioned, checked at the door,
instantiated many times in one request (all or nothing), each instance a unit (tags,
status, kill) whose failures stay inside it."""

from __future__ import annotations

import pytest
from server_helpers import Raw

from runner.client import Client, InvalidRequest
from runner.models import DAG_INSTANCE_TAG, DAG_NODE_TAG, DAG_RUN_TAG, Dag, DagInstanceState, Site
from runner.states import JobState

S = JobState
Inst = DagInstanceState


@pytest.fixture
def site(tolu_client: Client) -> Site:
    site = tolu_client.sites.create(name="dags", path="/tmp/dags", hostname="h")
    tolu_client.apps.create(
        site_id=site.id, name="prep", command_template="prep {sample}", parameters={"sample": None}
    )
    tolu_client.apps.create(
        site_id=site.id,
        name="sim",
        command_template="sim {sample} {steps} {seed}",
        parameters={"sample": None, "steps": 10, "seed": 0},
    )
    tolu_client.apps.create(site_id=site.id, name="reduce", command_template="reduce")
    return site


def _diamond(client: Client, site: Site, *, steps: object = "{steps}") -> Dag:
    dag = client.dags.builder("diamond", site=site, parameters={"sample": None, "steps": 100})
    prep = dag.node("prep", app="prep", parameters={"sample": "{sample}"}, tags={"sample": "{sample}"})
    sims = [
        dag.node(
            f"sim{i}",
            app="sim",
            parents=[prep],
            parameters={"sample": "s-{sample}", "steps": steps, "seed": i},
        )
        for i in range(2)
    ]
    dag.node("reduce", app="reduce", parents=sims, workdir="out/{dag}/{instance}")
    return dag.define()


def test_define_versions_only_what_changed(tolu_client: Client, site: Site, raw: Raw) -> None:
    first = _diamond(tolu_client, site)
    assert (first.name, first.version, [n.name for n in first.nodes]) == (
        "diamond",
        1,
        ["prep", "sim0", "sim1", "reduce"],
    )
    assert [[n.name for n in layer] for layer in first.layers()] == [["prep"], ["sim0", "sim1"], ["reduce"]]
    again = _diamond(tolu_client, site)
    assert again.id == first.id and again.version == 1
    body = {
        "name": "diamond",
        "site_id": site.id,
        "parameters": first.parameters,
        "nodes": [n.model_dump(mode="json") for n in first.nodes],
    }
    resp = raw("POST", "/dags", json=body)
    assert resp.status_code == 200 and resp.json()["id"] == first.id
    second = _diamond(tolu_client, site, steps=5)
    assert second.version == 2 and second.id != first.id
    assert [(d.name, d.version) for d in tolu_client.dags.filter()] == [("diamond", 2)]
    assert [d.version for d in tolu_client.dags.filter(all_versions=True)] == [2, 1]
    assert tolu_client.dags.latest("diamond").id == second.id
    assert tolu_client.dags.latest("diamond", version=1).id == first.id


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        (
            {"app": "nope"},
            ["body", "nodes", 0, "app"],
            "no app named 'nope' at site {site} (its apps: prep, reduce, sim)",
        ),
        (
            {"parameters": {"sampel": "x"}},
            ["body", "nodes", 0, "parameters", "sampel"],
            "app 'prep' has no parameter 'sampel' (its parameters: sample (required)); "
            "did you mean 'sample'?",
        ),
        (
            {"parameters": {"sample": "{smple}"}},
            ["body", "nodes", 0, "parameters", "sample"],
            "placeholder {{smple}} is not a parameter of the DAG (its parameters: sample (required); "
            "builtins: instance, run, dag)",
        ),
        ({"parents": ["ghost"]}, ["body", "nodes", 0, "parents", 0], "no node named 'ghost' in this DAG"),
        ({"parents": ["b"]}, ["body", "nodes"], "dependency cycle: a -> b -> a"),
    ],
)
def test_a_bad_dag_is_refused_with_where(
    raw: Raw, site: Site, change: dict[str, object], loc: list[object], message: str
) -> None:
    a = {"name": "a", "app": "prep", "parameters": {"sample": "{sample}"}, **change}
    b = {"name": "b", "app": "reduce", "parents": ["a"]}
    resp = raw(
        "POST",
        "/dags",
        json={"name": "bad", "site_id": site.id, "parameters": {"sample": None}, "nodes": [a, b]},
    )
    assert resp.status_code == 422, resp.text
    (error,) = resp.json()["detail"]
    assert (error["loc"], error["msg"]) == (loc, message.format(site=site.id))
    assert raw("GET", "/dags").json()["count"] == 0


def test_run_creates_every_instance_in_one_request(tolu_client: Client, site: Site) -> None:
    dag = _diamond(tolu_client, site)
    run = tolu_client.dags.run(
        dag, [{"sample": "a"}, {"sample": "b", "steps": 7}, {"sample": "c"}], tags={"study": "x"}
    )
    assert (run.dag_name, run.version, run.instances, run.jobs, run.tags) == (
        "diamond",
        1,
        3,
        12,
        {"study": "x"},
    )
    jobs = tolu_client.dags.jobs(run)
    assert len(jobs) == 12 and all(
        j.tags[DAG_RUN_TAG] == str(run.id) and j.tags["study"] == "x" for j in jobs
    )
    one = {j.tags[DAG_NODE_TAG]: j for j in tolu_client.dags.jobs(run, instance=1)}
    assert set(one) == {"prep", "sim0", "sim1", "reduce"}
    assert one["prep"].parameters == {"sample": "b"} and one["prep"].tags["sample"] == "b"
    assert one["sim1"].parameters == {"sample": "s-b", "steps": 7, "seed": 1}  # typed: 7, not "7"
    assert one["sim0"].parents == [one["prep"].id] and sorted(one["reduce"].parents) == sorted(
        [one["sim0"].id, one["sim1"].id]
    )
    assert one["reduce"].workdir == "out/diamond/1" and one["sim0"].workdir == f"dags/diamond/{run.id}/1/sim0"
    assert one["prep"].state == S.PREPROCESSED and one["reduce"].state == S.AWAITING_PARENTS
    assert tolu_client.dags.jobs(run, node="reduce").by_state() == {S.AWAITING_PARENTS: 3}
    status = tolu_client.dags.status(run)
    assert status.instances == {Inst.WAITING: 3} and status.jobs == {S.PREPROCESSED: 3, S.AWAITING_PARENTS: 9}
    assert [r.id for r in tolu_client.dags.runs(name="diamond")] == [run.id]


def test_bad_instances_create_nothing(tolu_client: Client, site: Site, raw: Raw) -> None:
    dag = _diamond(tolu_client, site)
    body = {"instances": [{"parameters": {"sample": "a"}}, {"parameters": {"sample": "b", "stesp": 3}}]}
    resp = raw("POST", f"/dags/{dag.id}/runs", json=body)
    assert resp.status_code == 422
    assert resp.json()["detail"] == [
        {
            "loc": ["body", "instances", 1, "parameters", "stesp"],
            "msg": "DAG 'diamond' has no parameter 'stesp' (its parameters: sample (required), steps=100); "
            "did you mean 'steps'?",
            "type": "unknown_parameter",
        }
    ]
    with pytest.raises(InvalidRequest, match="needs parameter sample"):
        tolu_client.dags.run(dag, [{"sample": "a"}, {}])
    assert tolu_client.jobs.count() == 0 and tolu_client.dags.runs() == []


def test_failure_stays_inside_its_instance_and_kill_is_per_unit(tolu_client: Client, site: Site) -> None:
    dag = _diamond(tolu_client, site)
    run = tolu_client.dags.run(dag, [{"sample": str(i)} for i in range(3)])
    (prep1,) = tolu_client.dags.jobs(run, instance=1, node="prep")
    tolu_client.jobs.update(prep1.id, state=S.FAILED, state_data={"reason": "bad sample"})
    assert tolu_client.dags.jobs(run, instance=1).by_state() == {S.FAILED: 4}
    assert tolu_client.dags.jobs(run, instance=0).by_state() == {S.PREPROCESSED: 1, S.AWAITING_PARENTS: 3}
    status = tolu_client.dags.status(run, detail=True)
    assert status.instances == {Inst.FAILED: 1, Inst.WAITING: 2}
    assert [(d.index, d.state, d.parameters) for d in status.detail or []] == [
        (0, Inst.WAITING, {"sample": "0"}),
        (1, Inst.FAILED, {"sample": "1"}),
        (2, Inst.WAITING, {"sample": "2"}),
    ]
    assert tolu_client.dags.kill(run, instance=2) == 4
    assert tolu_client.dags.status(run).instances == {Inst.FAILED: 1, Inst.KILLED: 1, Inst.WAITING: 1}
    assert tolu_client.dags.kill(run) == 4 and tolu_client.dags.kill(run) == 0
    killed = tolu_client.dags.jobs(run, instance=0)
    assert killed.by_state() == {S.KILLED: 4}
    assert tolu_client.events.filter(job_id=killed[0].id, to_state="KILLED")[0].data == {
        "reason": f"DAG run {run.id} killed"
    }
    one = tolu_client.dags.status(run, instance=1)
    assert [d.index for d in one.detail or []] == [1]


def test_a_run_larger_than_one_bulk_request(tolu_client: Client, site: Site) -> None:
    """11 instances of a 1,000-node DAG: 11,000 jobs, more than one bulk create holds."""
    dag = tolu_client.dags.builder("wide", site=site, parameters={"n": None})
    root = dag.node("root", app="reduce")
    for i in range(999):
        dag.node(f"leaf{i}", app="sim", parents=[root], parameters={"sample": "{n}-{instance}", "seed": i})
    wide = dag.define()
    run = tolu_client.dags.run(wide, [{"n": i} for i in range(11)])
    assert run.jobs == 11_000
    last = {j.tags[DAG_NODE_TAG]: j for j in tolu_client.dags.jobs(run, instance=10)}
    assert len(last) == 1000 and last["leaf998"].parents == [last["root"].id]
    assert last["leaf998"].parameters == {"sample": "10-10", "seed": 998}
    assert tolu_client.dags.status(run).instances == {Inst.WAITING: 11}
    assert DAG_INSTANCE_TAG in last["root"].tags
