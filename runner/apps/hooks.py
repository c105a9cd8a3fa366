"""Running an app's hook on the site, and where the job goes next."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.apps.definition import AppDef
from runner.models import Hook, Job
from runner.states import JobState


@dataclass(frozen=True)
class HookOutcome:
    """What a hook decided: the job's next state and what to record in the Event."""

    state: JobState
    state_data: dict[str, Any]
    data: dict[str, Any] | None = None


def _default_after(hook: Hook, job: Job) -> JobState:
    if hook == "preprocess":
        return JobState.PREPROCESSED
    if hook == "postprocess":
        return JobState.POSTPROCESSED
    return JobState.RESTART_READY if job.retry_count < job.retry_limit else JobState.FAILED


def run_hook(app: type[AppDef], hook: Hook, job: Job, workdir: Path) -> HookOutcome:
    """Run one hook of ``app`` for ``job`` and say where the job goes next.

    ``None`` from the hook: the normal next state (preprocess -> PREPROCESSED,
    postprocess -> POSTPROCESSED, handle_error/handle_timeout -> RESTART_READY while
    retries remain, else FAILED). An exception: FAILED with the error in the Event.
    """
    instance = app(job, workdir=workdir)
    before = dict(instance.data)
    try:
        result = getattr(instance, hook)()
        state = _default_after(hook, job) if result is None else JobState(result)
        state_data: dict[str, Any] = {"hook": hook}
    except Exception as exc:
        state = JobState.FAILED
        tail = traceback.format_exc().strip().splitlines()[-5:]
        state_data = {"hook": hook, "error": f"{type(exc).__name__}: {exc}", "traceback": tail}
    if state is JobState.FAILED and "reason" not in state_data:
        # a FAILED job always says why (docs/lifecycle.md): the error, or the hook's choice
        error = state_data.get("error")
        state_data["reason"] = f"{hook} raised {error}" if error else f"{hook} returned FAILED"
    data = instance.data if instance.data != before else None
    return HookOutcome(state=state, state_data=state_data, data=data)
