"""Step 4: ``tolu site init`` with the run's scheduler; the site must be registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.pipeline.step import StepFailed
from runner.site.settings import load

if TYPE_CHECKING:
    from harness.pipeline.context import Run


def create_site(run: Run) -> str:
    scheduler = run.options.scheduler
    run.tolu(
        "site", "init", str(run.site_dir), "--scheduler", scheduler, "--url", run.url, "--name", run.run_id
    )
    settings = load(run.site_dir)
    if settings.site_id is None:
        raise StepFailed(f"`tolu site init` did not register the site ({run.site_dir}/settings.yml)")
    run.site_id = settings.site_id
    return f"site {run.run_id} (id {run.site_id}) at {run.site_dir}, scheduler {scheduler}"
