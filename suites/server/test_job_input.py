"""Job input checked at the door: parameters by name against the app, stage-in/out specs
parsed at creation, and a bulk create that stays all or nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from server_helpers import Raw

from runner.client import Client
from runner.models import App, Site


@pytest.fixture
def site(tolu_client: Client) -> Site:
    return tolu_client.sites.create(
        name="input",
        path="/tmp/input",
        hostname="h",
        settings_summary={"transfer_locations": ["local", "alcf"]},
    )


@pytest.fixture
def hello(tolu_client: Client, site: Site) -> App:
    return tolu_client.apps.create(
        site_id=site.id,
        name="hello",
        command_template="echo {greeting} {name}",
        parameters={"greeting": "hi", "name": None},
    )


def _refused(raw: Raw, body: list[dict[str, object]]) -> dict[str, object]:
    resp = raw("POST", "/jobs", json=body)
    assert resp.status_code == 422, resp.text
    (error,) = resp.json()["detail"]
    return dict(error)


def test_an_unknown_parameter_is_refused_with_the_apps_list(
    raw: Raw, hello: App, tolu_client: Client
) -> None:
    error = _refused(raw, [{"app_id": hello.id, "parameters": {"nmae": "bob"}}])
    assert error["loc"] == ["body", 0, "parameters", "nmae"]
    assert error["msg"] == (
        "app 'hello' has no parameter 'nmae' (its parameters: greeting='hi', name (required)); "
        "did you mean 'name'?"
    )
    assert error["type"] == "unknown_parameter"
    assert tolu_client.jobs.count() == 0


def test_a_missing_parameter_names_every_one_and_the_list(raw: Raw, tolu_client: Client, site: Site) -> None:
    app = tolu_client.apps.create(
        site_id=site.id, name="two", command_template="echo {a} {b}", parameters={"a": None, "b": None}
    )
    error = _refused(raw, [{"app_id": app.id, "parameters": {}}])
    assert error["loc"] == ["body", 0, "parameters"]
    assert error["msg"] == "app 'two' needs parameters a, b (its parameters: a (required), b (required))"


def test_a_bulk_create_with_one_bad_element_creates_nothing(
    raw: Raw, hello: App, tolu_client: Client
) -> None:
    good = [{"app_id": hello.id, "parameters": {"name": str(i)}} for i in range(500)]
    bad = {"app_id": hello.id, "parameters": {"name": "x", "colour": "red"}}
    error = _refused(raw, [*good[:250], bad, *good[250:]])
    assert error["loc"] == ["body", 250, "parameters", "colour"]
    assert tolu_client.jobs.count() == 0
    assert len(tolu_client.jobs.bulk_create(good)) == 500


def test_free_parameter_apps_take_any_name(tolu_client: Client, site: Site) -> None:
    app = tolu_client.apps.create(
        site_id=site.id, name="free", command_template="echo {x}", parameters={"x": 1}, free_parameters=True
    )
    assert app.free_parameters
    (job,) = tolu_client.jobs.bulk_create([{"app_id": app.id, "parameters": {"anything": [1, 2]}}])
    assert job.parameters == {"anything": [1, 2]}
    # turned off again: the same job is refused
    tolu_client.apps.update(app.id, free_parameters=False)
    with pytest.raises(Exception, match="has no parameter 'anything'"):
        tolu_client.jobs.bulk_create([{"app_id": app.id, "parameters": {"anything": 1}}])


@pytest.mark.parametrize(
    ("transfer", "field", "message"),
    [
        (
            {"direction": "out", "source": "local:/results/", "destination": "out.h5"},
            "destination",
            "stage-out destination 'out.h5' is not LOCATION:PATH (e.g. local:/data/in.txt); "
            "stage-out is WORKDIR_PATH=LOCATION:PATH",
        ),
        (
            {"direction": "in", "source": "in.txt", "destination": "local:/data/in.txt"},
            "source",
            "stage-in source 'in.txt' is not LOCATION:PATH (e.g. local:/data/in.txt); "
            "stage-in is LOCATION:PATH=WORKDIR_PATH",
        ),
        (
            {"direction": "in", "source": "local:/data/in.txt", "destination": "../../etc/x"},
            "destination",
            "stage-in destination '../../etc/x' leaves the job's workdir; "
            "stage-in is LOCATION:PATH=WORKDIR_PATH",
        ),
        (
            {"direction": "out", "source": "/abs/out.h5", "destination": "local:/r/"},
            "source",
            "stage-out source '/abs/out.h5' must be relative to the job's workdir; "
            "stage-out is WORKDIR_PATH=LOCATION:PATH",
        ),
        (
            {"direction": "out", "source": "out.h5", "destination": "mars:/r/"},
            "destination",
            "unknown transfer location 'mars' (the site knows: local, alcf)",
        ),
    ],
)
def test_stage_specs_are_parsed_at_creation(
    raw: Raw, hello: App, tolu_client: Client, transfer: dict[str, str], field: str, message: str
) -> None:
    good = {"app_id": hello.id, "parameters": {"name": "a"}}
    error = _refused(
        raw,
        [
            good,
            {**good, "transfers": [{"direction": "in", "source": "local:/a", "destination": "a"}, transfer]},
        ],
    )
    assert error["loc"] == ["body", 1, "transfers", 1, field]
    assert error["msg"] == message
    assert tolu_client.jobs.count() == 0 and tolu_client.transfers.filter() == []


def test_good_stage_specs_are_stored(tolu_client: Client, hello: App) -> None:
    (job,) = tolu_client.jobs.bulk_create(
        [
            {
                "app_id": hello.id,
                "parameters": {"name": "a"},
                "transfers": [
                    {"direction": "in", "source": "alcf:/proj/in.h5", "destination": "data/in.h5"},
                    {"direction": "out", "source": "./out.h5", "destination": "local:/results/out.h5"},
                ],
            }
        ]
    )
    assert sorted(x.source for x in tolu_client.transfers.filter(job_id=job.id)) == [
        "./out.h5",
        "alcf:/proj/in.h5",
    ]
