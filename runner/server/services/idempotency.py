"""Idempotent job creation: a job sent again with a known ``idempotency_key`` is not created twice.

A client that lost the answer to ``POST /jobs`` (a read timeout, a dropped connection, a
crashed script) cannot know whether its jobs exist. When each job carries an
``idempotency_key`` (chosen by the client, unique among the owner's jobs; a unique index
``(owner_id, idempotency_key)`` holds it), sending the same request again is safe: the jobs
whose key is known are answered as they are now, and only the others are created.

How it relates to ``key``: ``key`` names a job *inside one request*, so that other jobs of
that request can list it in ``parents``; it is not stored. ``idempotency_key`` names a job
*for good*. A re-sent DAG carries both unchanged: a new job whose parent ``key`` belongs to
a job that already exists gets that job's id as its parent.

Each keyed job also stores a digest of the element it was created from. The same key with
a different element is a client bug (a key reused for other work), answered 422 at that
element's ``idempotency_key`` instead of silently returning the old job.

This is one step of ``services/job_create.bulk_create``: ``split`` before validation, ``stamp``
the new rows before they are written, ``answer`` in request order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from runner.models import JobCreate
from runner.server import rows
from runner.server import tables as t
from runner.server.errors import Invalid
from runner.server.lifecycle import chunks

#: what a write raises when a concurrent request inserted one of the same keys first (the unique
#: index refuses ours): SQLAlchemy's error, or the driver's own where rows go in by COPY.
RACED = (IntegrityError, psycopg.IntegrityError)


def digest(item: JobCreate) -> str:
    """What the element asked for: every field, defaults filled in (so leaving one out and
    sending its default are the same), dicts in the order sent (a resent request sends the
    same bytes; sorting them would triple the cost per job)."""
    return hashlib.sha256(item.model_dump_json().encode()).hexdigest()[:32]


@dataclass
class Split:
    """The request cut into jobs that exist already and jobs to create."""

    #: request index -> the existing job (answer form), for elements whose key is known.
    existing: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: request indices of the elements to create, in request order.
    fresh: list[int] = field(default_factory=list)
    #: the elements to create; in-request parent keys of existing jobs replaced by their ids.
    items: list[JobCreate] = field(default_factory=list)
    #: per element of ``items``: (idempotency key, digest) or None.
    stamps: list[tuple[str, str] | None] = field(default_factory=list)


def split(conn: Connection, owner: int, items: Sequence[JobCreate]) -> Split:
    """Look up the keyed elements of ``items``; raise ``Invalid`` on a key used twice in the
    request or reused for a different job."""
    keyed: dict[str, int] = {}
    for i, it in enumerate(items):
        k = it.idempotency_key
        if k is None:
            continue
        if k in keyed:
            raise Invalid.at(
                ["body", i, "idempotency_key"], f"idempotency key {k!r} is already used by element {keyed[k]}"
            )
        keyed[k] = i
    out = Split()
    if not keyed:
        out.fresh = list(range(len(items)))
        out.items = list(items)
        out.stamps = [None] * len(items)
        return out

    found = _existing(conn, owner, list(keyed))
    by_key: dict[str, int] = {}  # in-request ``key`` -> id of an existing job
    for k, i in keyed.items():
        if k not in found:
            continue
        job, stored = found[k]
        if stored != digest(items[i]):
            raise Invalid.at(
                ["body", i, "idempotency_key"],
                f"idempotency key {k!r} was used for a different job (job {job['id']}); "
                "a key names one job for good: choose a new key for new work",
            )
        out.existing[i] = job
        request_key = items[i].key
        if request_key is not None:
            by_key[request_key] = job["id"]

    for i, it in enumerate(items):
        if i in out.existing:
            continue
        out.fresh.append(i)
        if by_key and any(isinstance(p, str) and p in by_key for p in it.parents):
            parents: list[int | str] = [by_key.get(p, p) if isinstance(p, str) else p for p in it.parents]
            it = it.model_copy(update={"parents": parents})
        out.items.append(it)
        k = items[i].idempotency_key
        out.stamps.append(None if k is None else (k, digest(items[i])))
    return out


def _existing(conn: Connection, owner: int, keys: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
    """idempotency key -> (the job in answer form, its create digest), for the owner's known keys."""
    c = t.jobs.c
    found: dict[str, tuple[dict[str, Any], str]] = {}
    for part in chunks(keys):
        stmt = select(*rows.JOB_COLUMNS, c.create_digest).where(
            c.owner_id == owner, c.idempotency_key.in_(part)
        )
        for row in conn.execute(stmt):
            job = rows.one(rows.JOB_KEYS, row[:-1])
            found[job["idempotency_key"]] = (job, row[-1])
    return found


def stamp(job_rows: list[dict[str, Any]], stamps: Sequence[tuple[str, str] | None]) -> None:
    """Put each new row's key and digest (or NULLs) into the rows about to be inserted."""
    for row, s in zip(job_rows, stamps, strict=True):
        row["idempotency_key"], row["create_digest"] = s if s is not None else (None, None)


def answer(s: Split, created: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Existing and created jobs merged back into request order."""
    out: list[dict[str, Any]] = [{}] * (len(s.existing) + len(s.fresh))
    for i, job in s.existing.items():
        out[i] = job
    for i, job in zip(s.fresh, created, strict=True):
        out[i] = job
    return out


def renumber(exc: Invalid, s: Split) -> Invalid:
    """An error raised while creating ``s.items``, pointed at the element of the request."""
    if not s.existing:
        return exc
    errors = []
    for e in exc.errors:
        loc = list(e["loc"])
        if len(loc) > 1 and loc[0] == "body" and isinstance(loc[1], int) and loc[1] < len(s.fresh):
            loc[1] = s.fresh[loc[1]]
        errors.append({**e, "loc": loc})
    return Invalid(errors)
