"""The contract every site-agent service implements, and the registry the agent reads.

A service does one thing on a period: ``run_once()`` is called every ``period_sec``
seconds by the agent (runner/site/agent.py) in its own thread. It does not loop,
sleep or catch the server being down: the agent does that for all services alike
(one warning when the server becomes unreachable, backoff, one line when it is
back; unexpected exceptions logged with their traceback once per distinct error).

Write a service::

    from runner.site.service import Service, SiteContext, register_service

    @register_service("queue_maintainer")
    class QueueMaintainer(Service):
        def __init__(self, ctx: SiteContext) -> None:
            super().__init__(ctx)
            self.period_sec = ctx.settings.queue_maintainer.poll_interval_sec

        def run_once(self) -> None:
            ...  # ask the server, act, in bulk

and list its module in ``SERVICE_MODULES`` so the agent imports it only when the
site enables it (``SERVICES`` is a ``runner.registry.Registry``). ``__init__`` must
not do I/O (STYLE.md); ``close()`` releases what ``run_once`` started (worker pools,
subprocess handles).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from runner.registry import Registry
from runner.site.settings import SiteSettings

if TYPE_CHECKING:
    from runner.client import Client

#: service name -> module that registers it (imported only when the service is enabled).
SERVICE_MODULES: dict[str, str] = {
    "heartbeat": "runner.site.heartbeat",
    "processing": "runner.site.processing",
    "transfer": "runner.site.transfer",
    "scheduler": "runner.site.scheduler_service",
    "queue_maintainer": "runner.site.queue_maintainer",
    "autoscaler": "runner.site.autoscaler",
}


@dataclass(frozen=True)
class SiteContext:
    """What a service may use: the site directory, its validated settings, a client."""

    site_dir: Path
    settings: SiteSettings
    client: Client

    @property
    def site_id(self) -> int:
        if self.settings.site_id is None:
            raise RuntimeError(f"{self.site_dir}: site_id is not set; run `tolu site init {self.site_dir}`")
        return self.settings.site_id

    @property
    def apps_dir(self) -> Path:
        return self.site_dir / "apps"

    @property
    def data_dir(self) -> Path:
        return self.site_dir / "data"

    @property
    def log_dir(self) -> Path:
        return self.site_dir / "log"

    @property
    def batch_dir(self) -> Path:
        return self.site_dir / "batch"

    def workdir(self, relative: str) -> Path:
        """A job's working directory (``job.workdir`` is relative to ``data/``)."""
        return self.data_dir / relative


class Service(ABC):
    """One periodic task of the site agent."""

    #: registry name (set by ``@register_service``); also the logger suffix.
    name: ClassVar[str] = ""
    #: seconds between two ``run_once`` calls (start to start is not guaranteed:
    #: a slow ``run_once`` delays the next one, it never overlaps itself).
    period_sec: float = 5.0

    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        self.log = logging.getLogger(f"tolu.site.{self.name or type(self).__name__}")

    @classmethod
    def enabled(cls, settings: SiteSettings) -> bool:
        """Whether the site wants this service (beyond being listed in ``services``).

        Default: the ``enabled`` field of the settings section named like the
        service when there is one, else True.
        """
        section = getattr(settings, cls.name, None)
        return bool(getattr(section, "enabled", True))

    @abstractmethod
    def run_once(self) -> None:
        """Do one round of work. Raise to report a problem; never loop or sleep here."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Release resources; called once when the agent stops."""


SERVICES: Registry[type[Service]] = Registry("service", modules=SERVICE_MODULES)
#: ``@register_service("name")``: make a class the service called ``name``.
register_service = SERVICES.register
#: the class registered as ``name``, its module imported on first use.
get_service = SERVICES.get
