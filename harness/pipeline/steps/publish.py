"""Step 12: the run's report published to the server it tested, as its site (the site token that
``tolu site init`` saved), and read back: the results path, end to end (docs/results.md).

The report published is the one of steps 1-11 and their findings; report.json on disk also
holds this step. A failed run is published too: it is the one a person wants to see.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

from harness.bench.machine import git_commit
from harness.checkout import REPO_ROOT
from harness.pipeline import report
from harness.pipeline.step import StepFailed
from harness.publish import Publication, PublishError, detect_location, publish, target

if TYPE_CHECKING:
    from harness.pipeline.context import Run


def publish_run(run: Run) -> str:
    # as report.json has it (tuples as lists, paths as text): what the server gives back
    document = json.loads(json.dumps(report.build(run), default=str))
    try:
        to = target(run.site_dir)
        publication = Publication.of_pipeline(
            document,
            location=detect_location(),
            machine=socket.gethostname(),
            commit=git_commit(REPO_ROOT),
            load=run.load,
        )
        kept = publish(to, publication)
    except PublishError as exc:
        raise StepFailed(str(exc)) from None
    stored = to.client.runs.document(kept.id)
    if stored != document:
        raise StepFailed(f"run {kept.id} read back from {to.client.url} is not the report that was published")
    (area,) = kept.areas
    steps = len(document["steps"])
    if (area.area, area.passed + area.failed) != ("pipeline", steps + len(document["findings"])):
        raise StepFailed(f"run {kept.id}: the server counted {area} for {steps} steps")
    where = f"{to.page(kept)}, location {kept.location}"
    return f"run {kept.id} ({kept.run_id}) at {where}: pipeline {area.outcome}"
