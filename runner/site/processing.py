"""The processing service: runs the apps' hooks for jobs the server leaves to the site.

The server advances jobs of apps without hooks by itself (docs/api.md). For an app
that lists a hook, its jobs wait in the hook's state until this service runs it:

============  ==============  ===============================================
state         hook            next state when the hook returns None
============  ==============  ===============================================
STAGED_IN     preprocess      PREPROCESSED
RUN_DONE      postprocess     POSTPROCESSED
RUN_ERROR     handle_error    RESTART_READY while retry_count < retry_limit, else FAILED
RUN_TIMEOUT   handle_timeout  RESTART_READY while retry_count < retry_limit, else FAILED
============  ==============  ===============================================

Hooks are methods of the app's ``AppDef`` subclass in ``SITE/apps/`` (runner/apps/):
they read ``self.job``, ``self.params`` and ``self.workdir``, may change ``self.data``
(saved into ``job.data``), and return ``None`` or a ``JobState``. An exception fails
the job; its message and traceback go into the Event's data. Each round fetches the
waiting jobs in one request, runs their hooks in a pool of ``processing.workers``
threads, and sends all outcomes in one bulk update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runner.apps import AppDef, AppLike, HookOutcome, load_apps, run_hook
from runner.client.errors import Conflict
from runner.models import App, Hook, Job, JobUpdate
from runner.site.service import Service, SiteContext, register_service
from runner.states import JobState, allowed

log = logging.getLogger("tolu.site.processing")

#: the state a job waits in for each hook.
HOOK_OF_STATE: dict[JobState, Hook] = {
    JobState.STAGED_IN: "preprocess",
    JobState.RUN_DONE: "postprocess",
    JobState.RUN_ERROR: "handle_error",
    JobState.RUN_TIMEOUT: "handle_timeout",
}
#: most jobs taken per round (the rest wait for the next round).
BATCH = 1000


@register_service("processing")
class ProcessingService(Service):
    def __init__(self, ctx: SiteContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings.processing
        self.period_sec = self.cfg.poll_interval_sec
        self.pool: ThreadPoolExecutor | None = None
        self.server_apps: dict[int, App] = {}
        self.definitions: dict[str, AppLike] = {}
        self._apps_stamp: tuple[tuple[str, float], ...] | None = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None

    # ------------------------------------------------------------ apps

    def refresh_apps(self) -> None:
        """Server apps with hooks (for their ids) and local definitions (reloaded when files change)."""
        self.server_apps = {a.id: a for a in self.ctx.client.apps.filter(site_id=self.ctx.site_id) if a.hooks}
        stamp = tuple(sorted((p.name, p.stat().st_mtime) for p in self.ctx.apps_dir.glob("*") if p.is_file()))
        if stamp != self._apps_stamp:
            self.definitions = {a.name: a for a in load_apps(self.ctx.apps_dir)}
            self._apps_stamp = stamp

    # ------------------------------------------------------------ round

    def run_once(self) -> None:
        self.refresh_apps()
        if not self.server_apps:
            return
        jobs = self.ctx.client.jobs.filter(
            site_id=self.ctx.site_id, state=list(HOOK_OF_STATE), ordering="updated_at", limit=BATCH
        )
        work: list[tuple[Job, Hook]] = []
        for job in jobs:
            app = self.server_apps.get(job.app_id)
            hook = HOOK_OF_STATE[job.state]
            if app is not None and hook in app.hooks:
                work.append((job, hook))
        if not work:
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.cfg.workers, thread_name_prefix="tolu-hook")
        outcomes = list(self.pool.map(lambda w: self.run_one(*w), work))
        self.send([job for job, _ in work], outcomes)

    def run_one(self, job: Job, hook: Hook) -> HookOutcome:
        app = self.server_apps[job.app_id]
        definition = self.definitions.get(app.name)
        if not isinstance(definition, type) or not issubclass(definition, AppDef):
            return _failed(
                hook,
                f"app {app.name!r} has a {hook} hook on the server but no definition "
                f"in {self.ctx.apps_dir} (run `tolu site start` again after restoring it)",
            )
        outcome = run_hook(definition, hook, job, self.ctx.workdir(job.workdir))
        if outcome.state != JobState.FAILED and not allowed(job.state, outcome.state):
            why = f"{hook} returned {outcome.state.value}, which cannot follow {job.state.value}"
            return _failed(hook, why)
        if outcome.state == JobState.FAILED:
            log.warning("job %d: %s failed the job: %s", job.id, hook, outcome.state_data.get("reason", ""))
        return outcome

    def send(self, jobs: Sequence[Job], outcomes: Sequence[HookOutcome]) -> None:
        updates = [_update(job, out) for job, out in zip(jobs, outcomes, strict=True)]
        try:
            self.ctx.client.jobs.bulk_update(updates)
        except Conflict as exc:
            # Someone moved a job meanwhile (e.g. a user killed it): the bulk update is
            # all-or-nothing, so drop the jobs no longer where we found them and resend.
            current = {j.id: j.state for j in self.ctx.client.jobs.filter(id=[j.id for j in jobs])}
            keep = [u for u, job in zip(updates, jobs, strict=True) if current.get(job.id) == job.state]
            log.info(
                "%d of %d jobs moved while their hooks ran (%s)", len(updates) - len(keep), len(updates), exc
            )
            if keep:
                self.ctx.client.jobs.bulk_update(keep)
            updates = keep
        counts: dict[str, int] = {}
        for u in updates:
            key = str(u.state)
            counts[key] = counts.get(key, 0) + 1
        log.info(
            "hooks ran for %d jobs: %s",
            len(updates),
            ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )


def _failed(hook: Hook, error: str) -> HookOutcome:
    return HookOutcome(JobState.FAILED, {"hook": hook, "error": error, "reason": error})


def _update(job: Job, outcome: HookOutcome) -> JobUpdate:
    fields: dict[str, Any] = {"id": job.id, "state": outcome.state, "state_data": outcome.state_data}
    if outcome.data is not None:
        fields["data"] = outcome.data
    return JobUpdate(**fields)
