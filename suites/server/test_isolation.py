"""Every user sees and changes only their own rows; another user's id is a 404; every
endpoint answers every kind of credential as its scope says (isolation_matrix)."""

from __future__ import annotations

from collections.abc import Callable

import isolation_matrix as matrix
import pytest
from auth_helpers import create_token, exchange, expired_access, revoke
from server_helpers import make_site_app

from harness.fixtures_server import ServerHandle
from runner.client import Client
from runner.client.errors import InvalidRequest, NotFound


def test_a_second_user_cannot_see_or_touch_anything(
    tolu_client: Client, make_user: Callable[[], Client]
) -> None:
    alice = tolu_client
    sa = make_site_app(alice)
    (job,) = alice.jobs.bulk_create(
        [
            {
                "app_id": sa.app.id,
                "tags": {"who": "alice"},
                "transfers": [{"direction": "in", "source": "l:/a", "destination": "a"}],
            }
        ]
    )
    (runnable,) = alice.jobs.bulk_create([{"app_id": sa.app.id}])
    batch = alice.batch_jobs.create(site_id=sa.site.id, num_nodes=1, wall_time_min=5)
    session = alice.sessions.create(sa.site.id)
    (item,) = alice.transfers.filter(job_id=job.id)

    bob = make_user()
    # lists are empty
    assert bob.sites.filter() == []
    assert bob.apps.filter() == []
    assert bob.jobs.filter() == []
    assert bob.jobs.count() == 0
    assert bob.jobs.counts() == {} or all(v == 0 for v in bob.jobs.counts().values())
    assert bob.events.filter() == []
    assert bob.transfers.filter() == []
    assert bob.batch_jobs.filter() == []
    assert bob.sessions.filter() == []
    assert bob.jobs.filter(tags={"who": "alice"}) == []

    # reads, changes and deletes by id are 404, exactly like a missing row
    attempts: list[Callable[[], object]] = [
        lambda: bob.sites.get(sa.site.id),
        lambda: bob.sites.update(sa.site.id, name="mine"),
        lambda: bob.sites.delete(sa.site.id),
        lambda: bob.apps.get(sa.app.id),
        lambda: bob.apps.update(sa.app.id, description="mine"),
        lambda: bob.apps.delete(sa.app.id),
        lambda: bob.jobs.get(job.id),
        lambda: bob.jobs.update(job.id, state="KILLED"),
        lambda: bob.jobs.bulk_update([{"id": job.id, "tags": {"who": "bob"}}]),
        lambda: bob.jobs.delete(job.id),
        lambda: bob.transfers.bulk_update([{"id": item.id, "state": "done"}]),
        lambda: bob.batch_jobs.get(batch.id),
        lambda: bob.batch_jobs.update(batch.id, state="queued"),
        lambda: bob.batch_jobs.delete(batch.id),
        lambda: bob.sessions.heartbeat(session.id),
        lambda: bob.sessions.acquire(session.id, max_num_jobs=10),
        lambda: bob.sessions.delete(session.id),
        lambda: bob.apps.create(site_id=sa.site.id, name="x", command_template="true"),
        lambda: bob.batch_jobs.create(site_id=sa.site.id, num_nodes=1, wall_time_min=5),
        lambda: bob.sessions.create(sa.site.id),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    # referring to alice's app or job inside a bulk create names the field
    with pytest.raises(InvalidRequest) as err:
        bob.jobs.bulk_create([{"app_id": sa.app.id}])
    assert ["body", 0, "app_id"] in [list(e.loc) for e in err.value.errors]
    # a deletion filter matches none of alice's jobs
    assert bob.jobs.delete_where(tags={"who": "alice"}) == 0

    # alice's rows are untouched
    assert alice.jobs.get(job.id).tags == {"who": "alice"}
    assert alice.jobs.get(runnable.id).session_id is None
    assert alice.batch_jobs.get(batch.id).state == "pending_submission"
    assert alice.sites.get(sa.site.id).name == sa.site.name
    assert alice.transfers.filter(job_id=job.id)[0].state == "pending"
    assert len(alice.sessions.filter()) == 1


#: credential kind -> the profile of isolation_matrix it must follow.
KINDS = {
    "user": "owner",
    "read-only": "read",
    "site token (own site)": "own_site",
    "site token of another site": "other_site",
    "another user": "stranger",
    "revoked": "refused",
    "expired": "refused",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_endpoint_answers_every_kind_of_credential(
    kind: str, tolu_client: Client, make_user: Callable[[], Client], tolu_server: ServerHandle
) -> None:
    url = tolu_client.url
    assert tolu_client.token is not None
    owner = matrix.Caller(url, tolu_client.token)

    def caller_for(world: matrix.World) -> matrix.Caller:
        access = tolu_client.token or ""
        if kind == "user":
            return owner
        if kind == "read-only":
            return matrix.Caller(url, exchange(url, create_token(url, access, scope="read")["token"]))
        if kind.startswith("site token"):
            site = world.site if kind.endswith("(own site)") else world.other_site
            return matrix.Caller(
                url, exchange(url, create_token(url, access, scope="site", site_id=site)["token"])
            )
        if kind == "another user":
            other = make_user()
            return matrix.Caller(url, other.token or "")
        if kind == "revoked":
            made = create_token(url, access, scope="full")
            token = exchange(url, made["token"])
            assert matrix.Caller(url, token)("GET", "/users/me").status_code == 200
            revoke(url, access, made["id"])
            return matrix.Caller(url, token)
        if tolu_server.data_dir is None:
            pytest.skip(
                "an expired token is signed with the server's key: needs a server the harness started"
            )
        return matrix.Caller(url, expired_access(tolu_server.data_dir, access))

    outcome = matrix.run(owner, kind, KINDS[kind], caller_for)
    assert outcome.wrong == [], "\n".join(outcome.wrong)
