"""The agent's heartbeat against a real server: settings edited after `tolu site init`
reach the server with the agent's first heartbeat."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.client import Client
from runner.client.errors import InvalidRequest
from runner.site.heartbeat import HeartbeatService
from runner.site.service import SiteContext
from runner.site.settings import SiteSettings

STAGE_OUT = {"direction": "out", "source": "out.txt", "destination": "results:/archive/out.txt"}


def test_a_location_added_after_init_is_accepted_once_the_agent_has_started(
    tolu_client: Client, tmp_path: Path
) -> None:
    settings = SiteSettings(name="beat", server_url=tolu_client.url)
    site = tolu_client.sites.create(
        name="beat", path=str(tmp_path), hostname="h", settings_summary=settings.summary()
    )
    app = tolu_client.apps.create(site_id=site.id, name="echo", command_template="echo hi")
    with pytest.raises(InvalidRequest, match="unknown transfer location 'results'"):
        tolu_client.jobs.create(app.id, transfers=[STAGE_OUT])

    # the user adds a location to settings.yml and restarts the agent
    edited = settings.model_copy(update={"site_id": site.id})
    edited.transfer.locations["results"] = f"local:{tmp_path}"
    beat = HeartbeatService(SiteContext(site_dir=tmp_path, settings=edited, client=tolu_client))
    beat.run_once()

    summary = tolu_client.sites.get(site.id).settings_summary
    assert summary["transfer_locations"] == ["local", "results"]
    assert tolu_client.sites.get(site.id).last_heartbeat is not None
    job = tolu_client.jobs.create(app.id, transfers=[STAGE_OUT])
    assert job.id > 0
    beat.run_once()  # later heartbeats only say the agent is alive
    assert tolu_client.sites.get(site.id).settings_summary == summary
