"""Failed-login rate limits, per account and per address, counted from the audit events.

Counting the recorded ``login.failed`` events (rather than a counter in memory)
makes the limit hold across server restarts and across several server workers.
An account's count starts again after its last successful login; an address's
does not (an attacker with one account of their own must not reset it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from runner.server import tables as t
from runner.server.auth.settings import AuthSettings
from runner.server.errors import TooManyRequests

FAILED = "login.failed"
SUCCEEDED = "login.succeeded"


def check(
    conn: Connection, settings: AuthSettings, *, name_key: str, address: str | None, now: datetime
) -> None:
    """Raise TooManyRequests (with the seconds to wait) when either limit is reached."""
    a = t.audit_events
    window = timedelta(seconds=settings.login_window_sec)
    since = now - window
    last_ok = conn.execute(
        select(func.max(a.c.at)).where(a.c.action == SUCCEEDED, a.c.name_key == name_key, a.c.at > since)
    ).scalar()
    account_since = max(since, last_ok) if last_ok is not None else since
    checks = [(a.c.name_key == name_key, account_since, settings.login_max_failures, "this account")]
    if address:
        checks.append(
            (a.c.address == address, since, settings.login_max_failures_per_address, "your address")
        )
    for match, start, limit, what in checks:
        if limit <= 0:
            continue
        n, oldest = conn.execute(
            select(func.count(), func.min(a.c.at)).where(a.c.action == FAILED, match, a.c.at > start)
        ).one()
        if n >= limit and oldest is not None:
            wait = (oldest + window - now).total_seconds()
            raise TooManyRequests(
                f"too many failed logins for {what} ({n} in {settings.login_window_sec:.0f} s); "
                f"try again in {max(1, round(wait))} s",
                retry_after=wait,
            )
