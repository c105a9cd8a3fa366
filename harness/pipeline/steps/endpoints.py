"""Step 6: the transfer locations in the site's settings (local backend; Globus only where
configured), each backend known to the platform."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    globus = "configured" if settings.transfer.globus.client_id else "not configured (skipped)"
    return f"locations {', '.join(active)}; globus {globus}"
