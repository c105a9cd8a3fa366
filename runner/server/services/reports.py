"""Launcher reports: what a launcher saw happen to the jobs it runs, applied or moot.

A launcher keeps every report until the server has taken it, through outages of
any length (runner/launcher/reporter.py), so reports may arrive late: after the
launcher's session expired, after the job was retried or taken by another launcher,
twice (an answer lost on the way back). Each report names the attempt it is about
(``Job.attempt``: one more at every move to RESTART_READY), and the rules are:

- a report about the job's current attempt, from the session that holds the job or
  while no session holds it, is applied (a late RUNNING makes the reporter's session
  hold the job again, so nobody else takes it);
- a report about an attempt that the expiry of the reporter's earlier session ended
  (RUNNING -> RUN_TIMEOUT -> RESTART_READY, nothing since) reclaims the job: the
  timeout was only the server losing sight of a run that went on, so the job goes
  back to that attempt and RUNNING under the reporting session (an Event says so);
- anything else is moot: the job is held by another session (taken elsewhere: the
  outcome must not count twice), its attempt is over (retried, killed, failed by a
  hook), it is gone, or the life cycle refuses the move. A moot report is answered
  with the reason and never changes the job.

Reports are applied one by one, in order, inside one transaction: a moot report
does not sink the others (unlike ``PATCH /jobs``, which is all-or-nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from runner.models import MAX_BULK, JobReport
from runner.server import tables as t
from runner.server.auth.principal import Principal
from runner.server.db import to_naive_utc
from runner.server.lifecycle import Advancer, JobRec, load_recs
from runner.server.services.common import too_many
from runner.server.services.sessions import get_row
from runner.states import JobState, TransitionError, allowed

S = JobState
#: the Event data key with which a session's end marks the attempt it took from its launcher.
LOST_ATTEMPT = "lost_attempt"


def apply(conn: Connection, who: Principal, session_id: int, reports: Sequence[JobReport]) -> dict[str, Any]:
    """Apply what applies, answer the rest as moot: ``{"accepted": n, "moot": [...]}``."""
    if len(reports) > MAX_BULK:
        raise too_many(len(reports), "reports")
    # 404 when it expired (the launcher opens a new one); it cannot end before we commit
    get_row(conn, who, session_id, lock="key share")
    ids = list(dict.fromkeys(r.id for r in reports))
    recs = load_recs(conn, ids, owner_id=who.user_id, site_id=who.site_id)
    late = {r.id for r in reports if r.id in recs and r.attempt == recs[r.id].attempt - 1}
    lost = _lost_attempts(conn, [recs[i] for i in late if recs[i].state is S.RESTART_READY])
    adv = Advancer(conn)
    moot: list[dict[str, Any]] = []
    data: dict[int, dict[str, Any]] = {}
    accepted = 0
    for r in reports:
        rec = recs.get(r.id)
        reason = "job not found (deleted)" if rec is None else _refusal(rec, r, session_id, lost)
        if reason is None:
            assert rec is not None
            rec = adv.track(rec)
            reason = _apply_one(adv, rec, r, session_id)
        if reason is not None:
            moot.append({"id": r.id, "attempt": r.attempt, "state": r.state.value, "reason": reason})
            continue
        accepted += 1
        if r.data is not None:
            data[r.id] = r.data
    for job_id, values in data.items():
        conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(data=values))
    adv.flush()
    return {"accepted": accepted, "moot": moot}


def _refusal(rec: JobRec, r: JobReport, session_id: int, lost: dict[int, int]) -> str | None:
    """Why ``r`` is moot for the job as it is, or None when it may be applied."""
    if rec.session_id is not None and rec.session_id != session_id:
        return f"held by session {rec.session_id}: another launcher took the job"
    if r.attempt == rec.attempt or (r.attempt == rec.attempt - 1 and lost.get(rec.id) == r.attempt):
        return None
    if r.attempt > rec.attempt:
        return f"attempt {r.attempt} has not begun (the job is at attempt {rec.attempt})"
    return f"attempt {r.attempt} is over: the job is at attempt {rec.attempt} ({rec.state.value})"


def _apply_one(adv: Advancer, rec: JobRec, r: JobReport, session_id: int) -> str | None:
    """Apply one report that passed ``_refusal``; the life cycle's refusal, if any."""
    try:
        if r.attempt == rec.attempt - 1:
            _reclaim(adv, rec, r.attempt, session_id)
        if r.state is not rec.state:
            if r.run_started is not None and allowed(rec.state, S.RUNNING):
                # an outcome that carries its run's start: the RUNNING it stands for
                adv.move(rec, S.RUNNING, to_naive_utc(r.run_started))
            adv.move(rec, r.state, to_naive_utc(r.timestamp), r.state_data or None)
    except TransitionError as exc:
        return str(exc)
    if rec.state is S.RUNNING and rec.session_id != session_id:
        # a late RUNNING of a job nobody holds: the reporter's session holds it now
        rec.session_id = session_id
        rec.dirty = True
    if r.return_code is not None:
        rec.return_code = r.return_code
        rec.dirty = True
    return None


def _reclaim(adv: Advancer, rec: JobRec, attempt: int, session_id: int) -> None:
    """Undo a session end that took a running attempt from its launcher (see the module)."""
    rec.attempt = attempt
    # the timeout charged a retry for a run that never stopped
    rec.retry_count = max(0, rec.retry_count - 1)
    adv.move(
        rec,
        S.RUNNING,
        None,
        {
            "reclaimed_attempt": attempt,
            "reason": f"attempt {attempt} went on running after its session ended; "
            f"its launcher reports it under session {session_id}",
        },
    )
    rec.session_id = session_id


def _lost_attempts(conn: Connection, recs: Sequence[JobRec]) -> dict[int, int]:
    """job id -> the attempt a session end took from its launcher, for the jobs whose
    last two Events are that end (RUNNING -> RUN_TIMEOUT) and the retry it led to."""
    out: dict[int, int] = {}
    e = t.events.c
    for rec in recs:
        last = conn.execute(
            select(e.from_state, e.to_state, e.data).where(e.job_id == rec.id).order_by(e.id.desc()).limit(2)
        ).all()
        if len(last) != 2:
            continue
        (_, to_state, _), (from_state, timeout, data) = last
        lost = (data or {}).get(LOST_ATTEMPT)
        if (
            to_state == S.RESTART_READY.value
            and timeout == S.RUN_TIMEOUT.value
            and from_state == S.RUNNING.value
            and lost == rec.attempt - 1
        ):
            out[rec.id] = lost
    return out
