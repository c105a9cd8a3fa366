"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

import runner
from runner import heap, models
from runner.server import errors, faults, schema, webui
from runner.server.auth.keys import KeyRing
from runner.server.auth.oidc import OIDCProvider
from runner.server.auth.tokens import AccessTokens
from runner.server.auth.verify import Verifier
from runner.server.db import Database, utcnow
from runner.server.gate import Gate
from runner.server.hotpath import HotPath
from runner.server.openapi import document
from runner.server.routes import (
    admin,
    apps,
    auth,
    batch_jobs,
    dags,
    device_page,
    events,
    events_stream,
    jobs,
    runs,
    sessions,
    sites,
    stats,
    transfers,
    users,
    wellknown,
)
from runner.server.services import sessions as session_service
from runner.server.settings import ServerSettings

log = logging.getLogger("tolu.server")


async def _expire_sessions(state: Any, period: float) -> None:
    """Background task: end sessions whose heartbeat is older than their ttl; keep
    PostgreSQL's planner statistics fresh after bulk inserts.

    It is also how the server notices that its database was away: while the check
    fails, ``state.up_since`` is None, and the first check that works again starts
    the grace of sessions.expire (no launcher could heartbeat meanwhile)."""
    while True:
        await asyncio.sleep(period)
        try:
            n = await asyncio.to_thread(_expire_once, state)
            if n:
                log.info("expired %d session(s)", n)
        except Exception:  # a transient database error must not kill the task
            if state.up_since is not None:
                log.exception("session expiry failed (database away?); sessions get a grace when it is back")
            state.up_since = None


def _expire_once(state: Any) -> int:
    db: Database = state.db
    with db.write() as conn:
        if state.up_since is None:
            state.up_since = utcnow()
            log.info("database reachable again: every session gets its ttl to heartbeat before it may expire")
        n = session_service.expire(conn, up_since=state.up_since)
    db.maintain()
    return n


def verifier(settings: ServerSettings) -> Verifier:
    """The token check of this server: its key ring (made or rotated now), the provider if any."""
    a = settings.auth
    keys = KeyRing(settings.data_dir, rotate_after=timedelta(days=a.key_rotation_days)).load()
    tokens = AccessTokens(keys, issuer=a.issuer, ttl=timedelta(seconds=a.access_token_ttl_sec))
    return Verifier(settings=a, tokens=tokens, oidc=OIDCProvider(a.oidc) if a.oidc else None)


def create_app(settings: ServerSettings) -> FastAPI:
    """The app for ``settings``. Nothing touches the database until the lifespan starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.url)
        try:
            revision = schema.ensure_current(db.engine, migrate=settings.migrate)
        except Exception:
            db.dispose()
            raise
        app.state.db = db
        app.state.up_since = utcnow()
        app.state.revision = revision
        app.state.auth = verifier(settings)
        log.info("tolu server %s on %s (schema %s)", runner.__version__, db.kind, revision)
        if not heap.settle():
            log.debug("malloc arenas left as they are")
        task = asyncio.create_task(_expire_sessions(app.state, settings.session_check_sec))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            db.dispose()

    app = FastAPI(
        title="tolu",
        version=runner.__version__,
        description="tolu job runner API; see docs/api.md.",
        lifespan=lifespan,
        docs_url=None,  # webui.install serves /docs and /redoc from local assets
        redoc_url=None,
    )
    errors.install(app)
    # the launchers' three requests answered without FastAPI's routing (hotpath.py), under
    # the gate: authentication and the body limit before any route reads a request (gate.py)
    app.add_middleware(HotPath)
    app.add_middleware(Gate, max_body_bytes=settings.max_body_bytes)
    if faults.enabled():
        log.warning("test mode: %s=1, the fault switch /_test/faults is on (never in production)", faults.ENV)
        faults.install(app)
    app.add_middleware(errors.Unexpected)  # the outermost: it answers for what raised inside

    @app.get("/health", response_model=models.Health, tags=["health"])
    def health(request: Request) -> Response:
        db: Database = request.app.state.db
        return errors.json_response(
            {
                "status": "ok",
                "version": runner.__version__,
                "schema_revision": request.app.state.revision,
                "database": db.kind,
            }
        )

    # FastAPI matches a request against the routes in this order, at some 10 µs a route
    # here: the launchers' routes (acquire, reports, heartbeat: every job passes through
    # them) go first, then the jobs'. Twelfth, the sessions' routes took 0.3-0.5 ms of
    # the server's CPU to match; first, 0.05 ms (docs/performance.md).
    for module in (
        sessions,
        jobs,
        users,
        auth,
        admin,
        wellknown,
        device_page,
        sites,
        apps,
        events,
        transfers,
        batch_jobs,
        runs,
        stats,
        events_stream,
        dags,
    ):
        app.include_router(module.router)
    app.include_router(dags.runs_router)
    webui.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
