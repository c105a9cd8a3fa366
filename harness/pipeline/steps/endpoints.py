"""Step 5: the transfer locations in the site's settings (local backend; Globus only where
configured), each backend known to the platform, and the server told of them: it checks each
job's stage-in and stage-out ends against the locations its site reported (``tolu site init``
reported the ones of the settings it wrote, before these were added)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.pipeline.step import StepFailed
from runner.platform.transfer import get as get_backend
from runner.site.settings import load

if TYPE_CHECKING:
    from harness.pipeline.context import Run


def activate(run: Run) -> str:
    def edit(data: dict[str, Any]) -> None:
        transfer = data.setdefault("transfer", {})
        locations = transfer.setdefault("locations", {})
        locations.setdefault("local", "local:")
        locations["results"] = "local:"
        # for the empty-transfer fault: an endpoint whose root is elsewhere; it "succeeds", but
        # the file is not where the job asked for it
        run.misrouted.mkdir(parents=True, exist_ok=True)
        locations["misrouted"] = f"local:{run.misrouted}"
        transfer["poll_interval_sec"] = 1.0
        transfer["retry_backoff_sec"] = 1.0

    run.edit_settings(edit)
    settings = load(run.site_dir)
    active = []
    for alias, spec in settings.transfer.locations.items():
        get_backend(spec.partition(":")[0])  # an unknown backend fails the step
        active.append(f"{alias}={spec}")
    if run.site_id is None:  # step 4 registered it, or the run stopped there
        raise StepFailed("no site registered")
    client = run.client()
    summary = dict(client.sites.get(run.site_id).settings_summary)
    summary["transfer_locations"] = sorted(settings.transfer.locations)
    client.sites.update(run.site_id, settings_summary=summary)
    globus = "configured" if settings.transfer.globus.client_id else "not configured (skipped)"
    return f"locations {', '.join(active)}; globus {globus}"
