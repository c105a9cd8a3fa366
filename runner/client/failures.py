"""Why jobs failed, in one line each, with where their output is.

The reason is read from the job's Event history (the FAILED or KILLED Event's
``reason``, the last RUN_ERROR/RUN_TIMEOUT Event's exit code, error and output tail)
and, for python-function jobs, from the exception the launcher stored in ``job.data``.
``jobs.wait``, job handles, the notebook tables and ``tolu status`` all say it the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.client._base import _parse
from runner.models import Event, Job, Page, Site
from runner.states import JobState

if TYPE_CHECKING:
    from runner.client._http import HTTP

S = JobState
#: the file in a job's workdir that holds its stdout and stderr.
JOB_OUTPUT = "job.out"
#: the states a job ends in when it did not finish.
UNSUCCESSFUL = frozenset({S.FAILED, S.KILLED})
#: ids per events request (they go in the query string).
_IDS_PER_REQUEST = 400


@dataclass(frozen=True)
class Failure:
    """One job that did not finish: why, and where to look."""

    job_id: int
    state: JobState
    #: one line: the exception of a python job, else the exit code or error, and the final reason.
    reason: str
    #: SITE/data/<workdir>/job.out on the site's host.
    output_path: str
    #: the last lines of the job's output, as the launcher reported them ("" if none).
    tail: str = ""
    #: python-function jobs: the traceback of the exception ("" otherwise).
    traceback: str = ""

    def __str__(self) -> str:
        return f"job {self.job_id} {self.state.value}: {self.reason} (output: {self.output_path})"


def output_path(site: Site, job: Job) -> str:
    return f"{site.path}/data/{job.workdir}/{JOB_OUTPUT}"


def explain(http: HTTP, jobs: Iterable[Job]) -> dict[int, Failure]:
    """job id -> Failure for each job of ``jobs`` that ended FAILED or KILLED."""
    failed = [j for j in jobs if j.state in UNSUCCESSFUL]
    if not failed:
        return {}
    sites = {
        sid: _parse(Site, http.request("GET", f"/sites/{sid}").content) for sid in {j.site_id for j in failed}
    }
    events = _events(http, [j.id for j in failed])
    return {j.id: _failure(j, output_path(sites[j.site_id], j), events.get(j.id, [])) for j in failed}


def _events(http: HTTP, ids: Sequence[int]) -> dict[int, list[Event]]:
    wanted = [S.RUN_ERROR, S.RUN_TIMEOUT, S.FAILED, S.KILLED]
    out: dict[int, list[Event]] = {}
    for start in range(0, len(ids), _IDS_PER_REQUEST):
        part = ids[start : start + _IDS_PER_REQUEST]
        offset = 0
        while True:
            params = {"job_id": part, "to_state": wanted, "ordering": "id", "limit": 10_000, "offset": offset}
            page: Page[Event] = _parse(Page[Event], http.request("GET", "/events", params=params).content)
            for e in page.results:
                out.setdefault(e.job_id, []).append(e)
            offset += len(page.results)
            if not page.results or offset >= page.count:
                break
    return out


def _failure(job: Job, path: str, events: list[Event]) -> Failure:
    final = next((e for e in reversed(events) if e.to_state in UNSUCCESSFUL), None)
    run = next((e for e in reversed(events) if e.to_state in (S.RUN_ERROR, S.RUN_TIMEOUT)), None)
    parts: list[str] = []
    exc: Any = job.data.get("exception")
    traceback = ""
    if isinstance(exc, dict):
        parts.append(f"{exc.get('type', 'Exception')}: {exc.get('message', '')}")
        traceback = str(exc.get("traceback", ""))
    elif run is not None:
        parts.append(_run_problem(run))
    if final is not None and final.data.get("reason"):
        parts.append(str(final.data["reason"]))
    elif job.state == S.KILLED:
        parts.append("killed")
    tail = str((run.data.get("tail") if run is not None else "") or "")
    reason = "; ".join(" ".join(p.split()) for p in parts if p) or job.state.value
    return Failure(job.id, job.state, reason, path, tail=tail, traceback=traceback)


def _run_problem(event: Event) -> str:
    data = event.data
    if event.to_state == S.RUN_TIMEOUT:
        return str(data.get("reason") or "timed out")
    if data.get("error"):
        return str(data["error"])
    if data.get("return_code") is not None:
        return f"exit code {data['return_code']}"
    return str(data.get("reason") or "run error")
