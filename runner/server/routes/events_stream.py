"""``/events/stream``: a user's Events, live, over a WebSocket, resumable by cursor.

Protocol (JSON text messages; docs/ui.md has the whole story):

1. the client connects and sends ``{"type": "hello", "token": "<bearer token>",
   "cursor": <event id or null>}`` within HELLO_TIMEOUT_SEC (browsers cannot set an
   Authorization header on a WebSocket, so the token comes first, in the message);
2. the server answers ``{"type": "ready", "cursor": N, "username": ...}``; with no
   cursor the stream starts at the newest Event, otherwise right after the one given;
3. then ``{"type": "events", "cursor": N, "events": [...]}`` as Events commit, at most
   BATCH per message and one message per poll (thousands of state changes a second
   arrive as a few messages), and ``{"type": "idle", "cursor": N}`` every
   IDLE_SEC when nothing happened. ``cursor`` is where to resume after a reconnect:
   sending it back in the next hello loses nothing (see services/event_feed.py);
   events may repeat across a reconnect, and carry their ``id`` to drop repeats.

Access tokens live minutes: the client sends each renewed one as ``{"type": "token",
"token": ...}``. The token is checked like any request's (runner/server/auth/verify.py)
at the hello and again every REAUTH_SEC with the latest one sent.

Errors close the socket after an ``{"type": "error", "detail": ...}`` message: 4401 for
a missing, invalid, expired or revoked token, 4422 for a malformed hello (``detail``
names the field, as the REST API's 422 does).

Each connection polls the database (services/event_feed.py), so the stream works with
any number of server workers and with SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.server.auth.principal import Principal
from runner.server.auth.verify import principal_for
from runner.server.db import Database
from runner.server.errors import ServiceError, Unauthorized, validation_details
from runner.server.services.event_feed import BATCH, EventFeed, latest_id

log = logging.getLogger("tolu.server.events")
router = APIRouter()

HELLO_TIMEOUT_SEC = 10.0
#: seconds between polls while nothing is waiting (a full batch polls again at once).
POLL_SEC = 0.5
IDLE_SEC = 15.0
REAUTH_SEC = 60.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_INVALID = 4422


class Hello(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["hello"]
    token: str = Field(min_length=1, max_length=16_384)
    cursor: int | None = Field(default=None, ge=0, le=2**63 - 1)


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z).decode()


async def _fail(ws: WebSocket, code: int, detail: Any) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(_dumps({"type": "error", "detail": detail}))
        await ws.close(code=code, reason=str(detail)[:120] if isinstance(detail, str) else "invalid hello")


async def _authenticate(ws: WebSocket, token: str) -> Principal:
    """The same check as every request's (revoked, expired, disabled: refused)."""
    address = ws.client.host if ws.client else None
    return await asyncio.to_thread(principal_for, ws.app.state.auth, ws.app.state.db, token.strip(), address)


async def _hello(ws: WebSocket) -> Hello | None:
    try:
        raw = await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT_SEC)
    except TimeoutError:
        why = f"send a hello message with your token within {HELLO_TIMEOUT_SEC:g} s"
        await _fail(ws, CLOSE_UNAUTHORIZED, why)
        return None
    try:
        return Hello.model_validate_json(raw)
    except ValidationError as exc:
        await _fail(ws, CLOSE_INVALID, validation_details(exc.errors()))
        return None


@router.websocket("/events/stream")
async def stream(ws: WebSocket) -> None:
    await ws.accept()
    hello = await _hello(ws)
    if hello is None:
        return
    try:
        who = await _authenticate(ws, hello.token)
    except ServiceError as exc:
        await _fail(ws, CLOSE_UNAUTHORIZED, exc.detail)
        return
    db: Database = ws.app.state.db
    cursor = hello.cursor if hello.cursor is not None else await asyncio.to_thread(_latest, db)
    feed = EventFeed(who.user_id, cursor, site_id=who.site_id)
    await ws.send_text(_dumps({"type": "ready", "cursor": cursor, "username": who.username}))
    # Reading is how a closed connection is noticed, and how a renewed token arrives.
    token = _Token(hello.token)
    gone = asyncio.create_task(_listen(ws, token))
    try:
        await _pump(ws, db, feed, token, gone)
    except (WebSocketDisconnect, ConnectionError, RuntimeError):
        pass  # the client went away
    except Unauthorized as exc:
        await _fail(ws, CLOSE_UNAUTHORIZED, exc.detail)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await gone


def _latest(db: Database) -> int:
    with db.read() as conn:
        return latest_id(conn)


def _poll(db: Database, feed: EventFeed) -> tuple[list[dict[str, Any]], bool]:
    with db.read() as conn:
        return feed.poll(conn, BATCH)


class _Token:
    """The latest access token the client sent (they live minutes; the stream lives longer)."""

    def __init__(self, value: str) -> None:
        self.value = value


class Renew(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["token"]
    token: str = Field(min_length=1, max_length=16_384)


async def _listen(ws: WebSocket, token: _Token) -> None:
    """Until the client goes: take ``{"type": "token", "token": ...}`` messages (renewed
    tokens, checked at the next re-check); anything else is ignored."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            raw = await ws.receive_text()
            with contextlib.suppress(ValidationError):
                token.value = Renew.model_validate_json(raw).token


async def _pump(
    ws: WebSocket, db: Database, feed: EventFeed, token: _Token, gone: asyncio.Task[None]
) -> None:
    last_sent = last_auth = time.monotonic()
    while not gone.done():
        events, more = await asyncio.to_thread(_poll, db, feed)
        now = time.monotonic()
        if events:
            await ws.send_text(_dumps({"type": "events", "cursor": feed.settled, "events": events}))
            last_sent = now
        elif now - last_sent >= IDLE_SEC:
            await ws.send_text(_dumps({"type": "idle", "cursor": feed.settled}))
            last_sent = now
        if now - last_auth >= REAUTH_SEC:
            # a revoked grant, a disabled account, an expired token not renewed: the stream ends
            await _authenticate(ws, token.value)
            last_auth = now
        if not more:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(gone), POLL_SEC)
