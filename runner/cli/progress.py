"""``tolu launcher``'s console: a live progress line while it runs, one summary line after.

Counted from the server's Event history of the site since the launcher started (jobs
that reached RUN_DONE, RUN_ERROR or RUN_TIMEOUT) and the site's RUNNING jobs, so it is
the same for both modes and needs nothing from the engine. Another launcher on the same
site at the same time is counted too; the line says "at site".

The live line is drawn only on a terminal (``--progress`` forces it on, one line per
update): counting Events is a query the server would otherwise not run, and a
benchmark or a batch script should not pay for it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import IO

from runner.client import Client, ToluError
from runner.states import JobState

S = JobState


@dataclass(frozen=True)
class Tally:
    """What ran at the site since ``since``."""

    done: int
    errors: int
    timeouts: int
    running: int
    seconds: float

    @property
    def ran(self) -> int:
        return self.done + self.errors + self.timeouts

    @property
    def rate(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else 0.0

    def progress_line(self) -> str:
        return (
            f"launcher: {self.ran} jobs ran ({self.done} done, {self.errors} errors, "
            f"{self.timeouts} timeouts), {self.running} running, {self.rate:.1f} jobs/s"
        )

    def summary_line(self, site: str, mode: str) -> str:
        return (
            f"launcher ({mode} mode) at site {site}: {self.ran} jobs ran in {self.seconds:.1f} s "
            f"({self.rate:.1f} jobs/s): {self.done} done, {self.errors} errors, {self.timeouts} timeouts"
        )

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "ran": self.ran, "jobs_per_sec": round(self.rate, 3)}


class Progress:
    """Counts the site's finished runs while a launcher works (a daemon thread)."""

    def __init__(
        self, client: Client, site_id: int, *, stream: IO[str], live: bool, every: float = 2.0
    ) -> None:
        self.client = client
        self.site_id = site_id
        self.stream = stream
        self.live = live
        self.every = every
        self.since = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tty = stream.isatty()

    def start(self) -> None:
        if self.live:
            self._thread = threading.Thread(target=self._loop, name="tolu-progress", daemon=True)
            self._thread.start()

    def tally(self, client: Client | None = None) -> Tally:
        client = client or self.client

        def ran(state: JobState) -> int:
            return client.events.page(site_id=self.site_id, to_state=state, after=self.since, limit=1).count

        return Tally(
            done=ran(S.RUN_DONE),
            errors=ran(S.RUN_ERROR),
            timeouts=ran(S.RUN_TIMEOUT),
            running=client.jobs.count(site_id=self.site_id, state=S.RUNNING),
            seconds=time.monotonic() - self._t0,
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                line = self.tally().progress_line()
            except ToluError:
                continue  # the server is away: the launcher rides it out, so does the line
            self._show(line)

    def _show(self, line: str) -> None:
        if self._tty:
            self.stream.write(f"\r\x1b[K{line}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def stop(self) -> Tally | None:
        """Stop the line; the final tally, or None if the server does not answer now (it
        is asked with one retry: a launcher that stopped because the server stayed away
        must not wait out the client's backoff again to say so)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if self._tty:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
        client = self.client.clone(retries=1)
        try:
            return self.tally(client)
        except ToluError:
            return None
        finally:
            client.close()
