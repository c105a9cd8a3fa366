"""The site agent: runs each enabled service on its period, in one process.

Each service gets a thread that calls ``run_once()`` every ``period_sec``. The
agent, not the services, deals with failure:

* the server unreachable (``runner.client.errors.TransportError``): ONE warning
  for the whole agent, every service backs off (doubling up to ``MAX_BACKOFF_SEC``),
  an info line at the 10th, 100th, ... failed try, and one when a request goes
  through again;
* anything else: logged with its traceback the first time, then one short line
  at the 10th, 100th, ... repetition of the same error, and the service goes on.

Logs go to ``SITE/log/agent.log``; SIGTERM or SIGINT stops the loops after their
current round and closes every service. ``python -m runner.site.agent SITE`` is
what ``tolu site start`` runs (runner/cli/site.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from runner.client.errors import TransportError
from runner.roles import Role, announce
from runner.site import directory
from runner.site import settings as site_settings
from runner.site.service import Service, SiteContext, get_service
from runner.site.settings import SiteSettings

log = logging.getLogger("tolu.site.agent")

#: longest pause between two tries while the server is unreachable.
MAX_BACKOFF_SEC = 30.0
#: services every agent runs, whatever ``services`` lists.
ALWAYS = ("heartbeat",)


class ServerHealth:
    """Shared by all service threads: one warning when the server goes, one line when it is back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.outages = 0
        #: failed tries of all services in the current outage.
        self.tries = 0

    def failed(self, service: str, exc: BaseException) -> None:
        with self._lock:
            self.tries += 1
            tries = self.tries
            first = self.down_since is None
            if first:
                self.down_since = time.monotonic()
                self.outages += 1
        if not first:
            if _is_power_of_ten(tries):  # a sign of life at 10, 100, 1000, ... tries
                log.info("server %s: no answer to %d tries; services keep retrying", self.url, tries)
            return
        log.warning(
            "server %s unreachable (%s, seen by %s): services pause and retry with backoff "
            "up to %.0f s; nothing is lost",
            self.url,
            _one_line(exc),
            service,
            MAX_BACKOFF_SEC,
        )

    def ok(self, started: float) -> None:
        """A service's round that began at ``started`` (``time.monotonic()``) went through.
        Begun before the outage was noticed, its answers may predate it: the server is back
        only once a round begun since then goes through (a stop of the server while one
        service's requests were in flight read as down, back after 0.0 s, down again)."""
        with self._lock:
            if self.down_since is None or started < self.down_since:
                return
            downtime = time.monotonic() - self.down_since
            self.down_since = None
            self.tries = 0
        log.info("server %s reachable again after %.1f s; services resume", self.url, downtime)


@dataclass
class ErrorLog:
    """Tracebacks once per distinct error; repetitions as one line at 10, 100, 1000, ..."""

    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, service: str, exc: BaseException) -> None:
        key = (service, type(exc).__qualname__, str(exc)[:500])
        with self.lock:
            count = self.seen.get(key, 0) + 1
            self.seen[key] = count
        logger = logging.getLogger(f"tolu.site.{service}")
        if count == 1:
            tb = "".join(traceback.format_exception(exc)).rstrip()
            logger.error("%s failed: %s\n%s", service, _one_line(exc), tb)
        elif _is_power_of_ten(count):
            logger.error("%s failed again (%d times so far): %s", service, count, _one_line(exc))


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ServiceThread(threading.Thread):
    def __init__(self, service: Service, stop: threading.Event, health: ServerHealth, errors: ErrorLog):
        super().__init__(name=f"tolu-{service.name}", daemon=True)
        self.service = service
        self.stop_event = stop
        self.health = health
        self.errors = errors
        self.rounds = 0

    def run(self) -> None:
        period = max(0.01, float(self.service.period_sec))
        delay = 0.0
        failures = 0
        while not self.stop_event.wait(delay):
            started = time.monotonic()
            try:
                self.service.run_once()
            except TransportError as exc:
                self.health.failed(self.service.name, exc)
                failures += 1
                delay = min(MAX_BACKOFF_SEC, period * 2 ** min(failures, 16))
                continue
            except Exception as exc:
                self.errors.report(self.service.name, exc)
                delay = period
                continue
            failures = 0
            self.rounds += 1
            self.health.ok(started)
            delay = max(0.0, period - (time.monotonic() - started))


def enabled_services(settings: SiteSettings) -> list[str]:
    """Names of the services this site runs, in a stable order, without duplicates."""
    names: list[str] = []
    for name in (*ALWAYS, *settings.services):
        if name in names:
            continue
        if get_service(name).enabled(settings):
            names.append(name)
    return names


class Agent:
    """Builds the enabled services and runs them until ``stop()`` (or a signal)."""

    def __init__(self, ctx: SiteContext, *, services: Sequence[str] | None = None) -> None:
        self.ctx = ctx
        self.service_names = list(services) if services is not None else None
        self.stop_event = threading.Event()
        self.health = ServerHealth(_client_url(ctx))
        self.errors = ErrorLog()
        self.threads: list[ServiceThread] = []

    def start(self) -> None:
        names = self.service_names if self.service_names is not None else enabled_services(self.ctx.settings)
        services = [get_service(name)(self.ctx) for name in names]
        log.info(
            "site agent %s (site %s, pid %d) starting services: %s",
            self.ctx.site_dir,
            self.ctx.settings.site_id,
            os.getpid(),
            ", ".join(f"{s.name} every {s.period_sec:g} s" for s in services),
        )
        self.threads = [ServiceThread(s, self.stop_event, self.health, self.errors) for s in services]
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("service %s did not finish its round in time", thread.service.name)
        for thread in self.threads:
            try:
                thread.service.close()
            except Exception as exc:
                self.errors.report(thread.service.name, exc)
        log.info("site agent stopped")

    def run_forever(self) -> None:
        """Start, wait for SIGTERM/SIGINT (or ``stop_event``), stop. Main thread only."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not self.stop_event.wait(1.0):
            pass
        self.stop()


def _client_url(ctx: SiteContext) -> str:
    return str(getattr(ctx.client, "url", "") or ctx.settings.server_url or "the server")


def setup_logging(site_dir: Path, *, foreground: bool = False, level: int = logging.INFO) -> Path:
    """Send log records to ``SITE/log/agent.log`` (and stderr in the foreground)."""
    path = directory.log_path(site_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    handlers: list[logging.Handler] = [logging.FileHandler(path)]
    if foreground:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    # The agent reports an unreachable server once (ServerHealth); the client and
    # urllib3 would log every retried connection.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("runner.client").setLevel(logging.ERROR)
    return path


def make_context(site_dir: Path, settings: SiteSettings | None = None) -> SiteContext:
    """Load settings (validated) and build the client the services share."""
    from runner.site.connect import site_client

    settings = settings if settings is not None else site_settings.load(site_dir)
    return SiteContext(site_dir=site_dir, settings=settings, client=site_client(site_dir, settings))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.site.agent", description=__doc__)
    parser.add_argument("site_dir", type=Path)
    parser.add_argument("--foreground", action="store_true", help="also log to stderr")
    parser.add_argument("--pid-file", action="store_true", help="write SITE/log/agent.pid")
    args = parser.parse_args(argv)
    announce(Role.AGENT)
    site_dir: Path = args.site_dir.resolve()
    try:
        settings = site_settings.load(site_dir)
    except site_settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(site_dir, foreground=args.foreground)
    pid_file = directory.pid_file(site_dir) if args.pid_file else None
    if pid_file is not None:
        pid_file.write()
    try:
        agent = Agent(make_context(site_dir, settings))
        agent.run_forever()
    finally:
        if pid_file is not None:
            pid_file.remove(os.getpid())  # unless another agent has started since
    return 0


if __name__ == "__main__":
    sys.exit(main())
