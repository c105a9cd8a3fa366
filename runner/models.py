"""Pydantic schemas shared by the server and the client.

``*Create`` models are what a client sends to make a row, ``*Update`` models what it
sends to change one (every field optional), and the bare name is what the server
answers. Request models forbid unknown fields, so a typo is a 422 naming the field
instead of a silently ignored value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypedDict, TypeVar

import orjson
from annotated_types import Interval
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from runner.states import RUN_OUTCOMES, BatchJobState, JobState

#: Largest number of items one bulk request may carry; clients split larger work.
MAX_BULK = 10_000

# ---------------------------------------------------------------- bounds
# Every integer, string and size a client sends is bounded here, so that input the
# databases cannot store is a 422 naming the field, never a 500 (docs/api.md, "Limits").

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
#: a job, event or transfer id (64-bit columns).
Id = Annotated[int, Interval(ge=0, le=INT64_MAX)]
#: a user, site, app, batch job or session id (32-bit columns on PostgreSQL).
Id32 = Annotated[int, Interval(ge=0, le=INT32_MAX)]
#: a process exit code (a 32-bit column).
Int32 = Annotated[int, Interval(ge=-INT32_MAX - 1, le=INT32_MAX)]
#: names (sites, apps, keys, queues), paths, free text, serialized payloads.
NAME_MAX = 256
PATH_MAX = 4096
TEXT_MAX = 65_536
BLOB_MAX = 16 << 20
Name = Annotated[str, StringConstraints(max_length=NAME_MAX)]
PathText = Annotated[str, StringConstraints(max_length=PATH_MAX)]
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX)]
Blob = Annotated[str, StringConstraints(max_length=BLOB_MAX)]
#: JSON objects, by their size encoded: a job's parameters and environment are read
#: by every launcher and listed in every page of jobs, so they stay small.
PARAMETERS_MAX_BYTES = 64 << 10
DATA_MAX_BYTES = 1 << 20
#: a published run's document (report.json, bench.json): the request body's default limit.
RUN_DOCUMENT_MAX_BYTES = 64 << 20
#: most tags on one job.
TAGS_MAX = 64


def _json_size(limit: int) -> AfterValidator:
    def check(value: Any) -> Any:
        try:
            size = len(orjson.dumps(value))
        except TypeError:  # orjson's only refusal for parsed JSON: an integer beyond 64 bits
            raise PydanticCustomError(
                "int_too_large", "integers beyond 64 bits cannot be stored; send them as strings"
            ) from None
        if size > limit:
            raise PydanticCustomError(
                "too_large", "{size} bytes as JSON, at most {limit}", {"size": size, "limit": limit}
            )
        return value

    return AfterValidator(check)


Parameters = Annotated[dict[str, Any], _json_size(PARAMETERS_MAX_BYTES)]
Environment = Annotated[dict[str, str], _json_size(PARAMETERS_MAX_BYTES)]
Data = Annotated[dict[str, Any], _json_size(DATA_MAX_BYTES)]
Tags = dict[str, str]
TagsIn = Annotated[dict[str, str], Field(max_length=TAGS_MAX)]


def _nul_at(value: Any) -> str | None:
    """Where in ``value`` a NUL character is ("" for the value itself), or None."""
    if isinstance(value, str):
        return "" if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\x00" in k:
                return f" (in key {k!r})"
            where = _nul_at(v)
            if where is not None:
                return where or f" (in {k!r})"
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            where = _nul_at(v)
            if where is not None:
                return where or f" (item {i})"
    return None


#: validation context of a JSON body known to hold no NUL (no ``\\u0000`` in its text):
#: the per-field walk is skipped (runner/server/routes/body.py; bulk bodies are large).
NUL_FREE = {"nul_free": True}


def no_nul(value: Any, info: ValidationInfo) -> Any:
    """NUL characters fit in no database text column nor in a process's argv: refused."""
    if info.context is not None and info.context.get("nul_free"):
        return value
    where = _nul_at(value)
    if where is not None:
        raise PydanticCustomError(
            "nul_character", "NUL characters (\\x00) are not allowed{where}", {"where": where}
        )
    return value


def _text_without_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "NUL characters (\\x00) are not allowed")
    return value


#: a name given in a query string (``?name=``).
NameQuery = Annotated[str, StringConstraints(max_length=NAME_MAX), AfterValidator(_text_without_nul)]


class Request(BaseModel):
    # NaN and infinities have no JSON spelling and no meaning for any field here
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    _no_nul = field_validator("*")(no_nul)


class Reply(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a filtered list, with the total count of matching rows."""

    count: int
    results: list[T]


# ---------------------------------------------------------------- users and auth


class UserCreate(Request):
    username: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@+-]+$")
    #: the server's password policy (length, common passwords) says the rest, with the reason.
    password: str = Field(min_length=1, max_length=1024)


class LoginRequest(Request):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)
    #: what this login is for, shown by `tolu token ls` (e.g. "tolu CLI on login1").
    client_name: str = Field("", max_length=128)


class User(Reply):
    id: int
    username: str
    created_at: datetime
    role: Literal["user", "admin"] = "user"
    email: str | None = None
    disabled: bool = False


class Token(Reply):
    """What a login or a token exchange answers (RFC 6749 section 5.1, plus tolu's fields)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    #: seconds the access token lives.
    expires_in: int = 0
    username: str
    #: present for logins (password, device, SSO): exchange it at /auth/token for the next pair.
    refresh_token: str | None = None
    scope: Literal["full", "read", "site"] = "full"
    site_id: int | None = None


class ApiTokenCreate(Request):
    name: str = Field(min_length=1, max_length=128, description="what the token is for")
    scope: Literal["full", "read", "site"] = "full"
    #: the site a ``site`` token reaches (required then, refused otherwise).
    site_id: Id32 | None = None
    #: days until it stops working; null: never (until revoked).
    expires_in_days: float | None = Field(90.0, gt=0, le=3660)


class ApiToken(Reply):
    """A credential of the account: a token (``tolu token create``) or a login."""

    id: int
    kind: Literal["token", "login"]
    via: str
    name: str
    scope: Literal["full", "read", "site"]
    site_id: int | None = None
    #: the first characters of the token, to recognise it.
    hint: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiTokenCreated(ApiToken):
    #: the secret: shown this once, stored by the server only as a hash.
    token: str


class DeviceAuthorization(Reply):
    """RFC 8628 section 3.2."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class DeviceDecision(Request):
    user_code: str = Field(min_length=4, max_length=32)
    approve: bool = True


class AuditEvent(Reply):
    id: int
    user_id: int | None
    action: str
    address: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime


class UserAdminUpdate(Request):
    disabled: bool | None = None
    role: Literal["user", "admin"] | None = None


class SSOInfo(Reply):
    """The identity provider a server accepts (``GET /auth/sso``)."""

    issuer: str
    client_id: str
    audience: str
    #: the scopes to ask the provider for.
    scopes: str = "openid profile email"


# ---------------------------------------------------------------- sites and apps


class SiteCreate(Request):
    name: str = Field(min_length=1, max_length=256)
    path: str = Field(
        min_length=1, max_length=PATH_MAX, description="absolute path of the site directory on its host"
    )
    hostname: str = Field(min_length=1, max_length=NAME_MAX)
    settings_summary: Data = Field(default_factory=dict)


class SiteUpdate(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX)] | None = None
    path: PathText | None = None
    hostname: Name | None = None
    settings_summary: Data | None = None
    last_heartbeat: datetime | None = None


class Site(Reply):
    id: int
    name: str
    path: str
    hostname: str
    owner: str
    settings_summary: dict[str, Any]
    last_heartbeat: datetime | None
    created_at: datetime

    def _repr_html_(self) -> str:
        from runner.html import fields_table

        beat = self.last_heartbeat.strftime("%Y-%m-%d %H:%M:%S") if self.last_heartbeat else "never"
        return fields_table(
            f"site {self.name} (id {self.id})",
            [
                ("host", self.hostname),
                ("path", self.path),
                ("agent heartbeat", beat),
                *((k, v) for k, v in sorted(self.settings_summary.items())),
            ],
        )


class Resources(Request):
    """What one job needs. ``wall_time_min`` 0 means no limit."""

    num_nodes: int = Field(default=1, ge=1, le=100_000)
    ranks_per_node: int = Field(default=1, ge=1, le=100_000)
    threads_per_rank: int = Field(default=1, ge=1, le=100_000)
    gpus_per_rank: int = Field(default=0, ge=0, le=1_000)
    node_packing_count: int = Field(default=1, ge=1, le=100_000)
    wall_time_min: float = Field(default=0, ge=0)


class AppKind(StrEnum):
    SHELL = "shell"
    PYTHON = "python"


#: Hook names an app may define; the processing service calls them on the site.
HOOKS = ("preprocess", "postprocess", "handle_error", "handle_timeout")
Hook = Literal["preprocess", "postprocess", "handle_error", "handle_timeout"]


def _each_once(hooks: list[Hook]) -> list[Hook]:
    if len(set(hooks)) != len(hooks):
        raise PydanticCustomError("duplicate_hook", "each hook at most once")
    return hooks


#: an app's hooks: each at most once.
Hooks = Annotated[list[Hook], Field(max_length=len(HOOKS)), AfterValidator(_each_once)]


class AppCreate(Request):
    site_id: Id32
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    description: Text = ""
    kind: AppKind = AppKind.SHELL
    #: shell apps: argv template, ``{param}`` placeholders filled per job (no shell).
    command_template: Text | None = None
    #: python apps: the function, cloudpickled and base64-encoded.
    serialized_function: Blob | None = None
    #: parameter name -> default value; ``None`` marks a required parameter.
    parameters: Parameters = Field(default_factory=dict)
    default_resources: Resources = Field(default_factory=Resources)
    environment: Environment = Field(default_factory=dict)
    #: which hooks the app's definition implements (others are skipped by the server).
    hooks: Hooks = Field(default_factory=list)
    #: the app takes parameters it does not declare (e.g. a python function with
    #: ``**kwargs``); otherwise a job naming an undeclared parameter is refused.
    free_parameters: bool = False


class AppUpdate(Request):
    description: Text | None = None
    kind: AppKind | None = None
    command_template: Text | None = None
    serialized_function: Blob | None = None
    parameters: Parameters | None = None
    default_resources: Resources | None = None
    environment: Environment | None = None
    hooks: Hooks | None = None
    free_parameters: bool | None = None


class App(Reply):
    id: int
    site_id: int
    name: str
    description: str
    kind: AppKind
    command_template: str | None
    #: a blob (cloudpickle, base64): left out of the repr.
    serialized_function: str | None = Field(repr=False)
    parameters: dict[str, Any]
    default_resources: Resources
    environment: dict[str, str]
    hooks: list[Hook]
    free_parameters: bool = False
    created_at: datetime
    updated_at: datetime

    def parameter_list(self) -> str:
        """The app's parameters as a person reads them: ``name (required), steps=100``."""
        return describe_parameters(self.parameters, free=self.free_parameters)

    def _repr_html_(self) -> str:
        from runner.html import fields_table

        return fields_table(
            f"app {self.name} (id {self.id})",
            [
                ("kind", self.kind.value),
                ("command", self.command_template or "(python function)"),
                ("parameters", self.parameter_list()),
                ("site", self.site_id),
                ("resources", _resources_text(self.default_resources)),
                ("hooks", ", ".join(self.hooks) or "-"),
                ("description", self.description or "-"),
            ],
        )


def describe_parameters(parameters: Mapping[str, Any], *, free: bool = False) -> str:
    """``name (required), steps=100``; ``none`` for an app without parameters."""
    shown = ", ".join(f"{k} (required)" if v is None else f"{k}={v!r}" for k, v in parameters.items())
    shown = shown or "none"
    return shown + (" (and any other: free parameters)" if free else "")


def _resources_text(r: Resources) -> str:
    text = f"{r.num_nodes} node(s) x {r.ranks_per_node} rank(s) x {r.threads_per_rank} thread(s)"
    if r.gpus_per_rank:
        text += f", {r.gpus_per_rank} GPU(s)/rank"
    if r.node_packing_count > 1:
        text += f", {r.node_packing_count} per node"
    if r.wall_time_min:
        text += f", {r.wall_time_min:g} min"
    return text


# ---------------------------------------------------------------- transfers


class TransferDirection(StrEnum):
    IN = "in"
    OUT = "out"


class TransferState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    ERROR = "error"


class TransferItemCreate(Request):
    """One file or directory to stage.

    The remote end is ``LOCATION:PATH`` where LOCATION is an alias from the site's
    ``transfer.locations`` settings (e.g. ``local:/data/in.txt`` or ``alcf:/proj/x``);
    the local end is a path relative to the job's workdir. For ``in`` the remote end
    is the source, for ``out`` the destination.
    """

    direction: TransferDirection
    source: str = Field(min_length=1, max_length=PATH_MAX)
    destination: str = Field(min_length=1, max_length=PATH_MAX)
    recursive: bool = False

    @field_validator("source", "destination")
    @classmethod
    def _parsed(cls, value: str, info: ValidationInfo) -> str:
        # Parsed here, at creation, so that a reversed or malformed spec is a 422 now and
        # not a failed stage-out after the job ran.
        direction = info.data.get("direction")
        if direction is None:
            return value
        remote = (info.field_name == "source") == (direction == TransferDirection.IN)
        problem = remote_end_problem(value) if remote else local_end_problem(value)
        if problem:
            inbound = direction == TransferDirection.IN
            shape = "LOCATION:PATH=WORKDIR_PATH" if inbound else "WORKDIR_PATH=LOCATION:PATH"
            raise PydanticCustomError(
                "transfer_spec",
                "stage-{direction} {field} {value} {problem}; stage-{direction} is {shape}",
                {
                    "direction": direction.value,
                    "field": info.field_name,
                    "value": repr(value),
                    "problem": problem,
                    "shape": shape,
                },
            )
        return value


def split_location(remote: str) -> tuple[str, str] | None:
    """``alias:path`` -> ``(alias, path)``; None when ``remote`` is not of that shape."""
    alias, sep, path = remote.partition(":")
    if not sep or not alias or not path or "/" in alias:
        return None
    return alias, path


def remote_end_problem(remote: str) -> str | None:
    """Why ``remote`` is not a transfer's ``LOCATION:PATH`` end (None: it is)."""
    if split_location(remote) is None:
        return "is not LOCATION:PATH (e.g. local:/data/in.txt)"
    return None


def local_end_problem(local: str) -> str | None:
    """Why ``local`` is not a path inside the job's workdir (None: it is)."""
    if local.startswith("/"):
        return "must be relative to the job's workdir"
    parts = [p for p in local.split("/") if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return "leaves the job's workdir"
    return None


class TransferItem(Reply):
    id: int
    job_id: int
    direction: TransferDirection
    source: str
    destination: str
    recursive: bool
    state: TransferState
    task_id: str | None
    error: str | None
    updated_at: datetime


class TransferItemUpdate(Request):
    id: Id
    state: TransferState | None = None
    task_id: Name | None = None
    error: Text | None = None


# ---------------------------------------------------------------- jobs


class JobCreate(Request):
    app_id: Id32
    #: optional name, unique within one bulk request, that other jobs of the same
    #: request may list in ``parents`` (a whole DAG in one request).
    key: str | None = Field(default=None, max_length=256)
    #: optional name chosen by the client, unique among the owner's jobs for good: sending
    #: a job whose idempotency key is known creates nothing and answers the existing job,
    #: so a create whose answer was lost can be sent again (docs/api.md, "Idempotent creation").
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    #: parent job ids (int) or keys of jobs in the same request (str).
    parents: list[Id | Name] = Field(default_factory=list, max_length=MAX_BULK)
    parameters: Parameters = Field(default_factory=dict)
    #: python apps: cloudpickled, base64-encoded ``(args, kwargs)``.
    serialized_args: Annotated[str, StringConstraints(max_length=DATA_MAX_BYTES)] | None = None
    tags: TagsIn = Field(default_factory=dict)
    environment: Environment = Field(default_factory=dict)
    #: relative to the site's ``data/`` directory; default ``<app>/<job id>``.
    workdir: PathText | None = None
    #: None: the app's default resources.
    resources: Resources | None = None
    retry_limit: int = Field(default=3, ge=0, le=1_000)
    transfers: list[TransferItemCreate] = Field(default_factory=list, max_length=MAX_BULK)
    data: Data = Field(default_factory=dict)


class JobUpdate(Request):
    """One element of a bulk update, or the body of ``PATCH /jobs/{id}``.

    ``state`` is checked against the transition table; ``state_timestamp`` lets a
    launcher report when the change really happened (its batches arrive later);
    ``state_data`` goes into the Event (e.g. the tail of a failed job's output).
    """

    id: Id | None = None
    state: JobState | None = None
    state_timestamp: datetime | None = None
    state_data: Parameters = Field(default_factory=dict)
    return_code: Int32 | None = None
    tags: TagsIn | None = None
    parameters: Parameters | None = None
    data: Data | None = None
    retry_limit: int | None = Field(default=None, ge=0, le=1_000)
    resources: Resources | None = None

    # the fields that can hold text (see JobReport)
    _no_nul = field_validator("state_data", "tags", "parameters", "data")(no_nul)


class Job(Reply):
    id: int
    app_id: int
    site_id: int
    state: JobState
    idempotency_key: str | None = None
    parents: list[int]
    parameters: dict[str, Any]
    #: a blob (cloudpickle, base64): left out of the repr.
    serialized_args: str | None = Field(repr=False)
    tags: Tags
    environment: dict[str, str]
    workdir: str
    num_nodes: int
    ranks_per_node: int
    threads_per_rank: int
    gpus_per_rank: int
    node_packing_count: int
    wall_time_min: float
    return_code: int | None
    retry_count: int
    retry_limit: int
    #: 0 at creation, one more at every move to RESTART_READY; launchers tie their
    #: reports to it (see JobReport).
    attempt: int = 0
    data: dict[str, Any]
    batch_job_id: int | None
    session_id: int | None
    created_at: datetime
    updated_at: datetime

    def __repr_args__(self) -> Any:
        # a python job's result is a pickled blob in data: its size says enough
        for key, value in super().__repr_args__():
            if key == "data" and isinstance(value, dict):
                value = {k: _blob(v) for k, v in value.items()}
            yield key, value

    def _repr_html_(self) -> str:
        from runner.html import fields_table

        fields: list[tuple[str, Any]] = [
            ("state", self.state.value),
            ("app", self.app_id),
            ("site", self.site_id),
            ("parameters", ", ".join(f"{k}={v!r}" for k, v in self.parameters.items()) or "-"),
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items())) or "-"),
            ("parents", ", ".join(map(str, self.parents)) or "-"),
            ("resources", _resources_text(self.resources)),
            ("return code", self.return_code),
            ("retries", f"{self.retry_count} of {self.retry_limit}"),
            ("workdir", self.workdir),
            ("updated", self.updated_at.strftime("%Y-%m-%d %H:%M:%S")),
        ]
        exc = self.data.get("exception")
        if isinstance(exc, dict):
            fields.insert(1, ("error", f"{exc.get('type', 'Exception')}: {exc.get('message', '')}"))
        return fields_table(f"job {self.id}", fields)

    @property
    def resources(self) -> Resources:
        return Resources(
            num_nodes=self.num_nodes,
            ranks_per_node=self.ranks_per_node,
            threads_per_rank=self.threads_per_rank,
            gpus_per_rank=self.gpus_per_rank,
            node_packing_count=self.node_packing_count,
            wall_time_min=self.wall_time_min,
        )


def _blob(value: Any) -> Any:
    return f"<{len(value)} characters>" if isinstance(value, str) and len(value) > 60 else value


def _tag_pairs(value: Any) -> Any:
    """A ``{key: value}`` dict (Python callers) as the list of pairs the query string gives."""
    return list(value.items()) if isinstance(value, Mapping) else value


def _tag_pair(value: Any) -> Any:
    """``key:value`` (one ``tags`` value of the query string) -> ``(key, value)``."""
    if not isinstance(value, str):
        return value
    key, sep, tag_value = value.partition(":")
    if not sep or not key:
        # the whole message, without pydantic's "Value error, " prefix
        raise PydanticCustomError("value_error", "expected key:value, got {got}", {"got": repr(value)})
    return key, tag_value


#: one tag a job must have; ``key:value`` in the query string.
TagMatch = Annotated[tuple[str, str], BeforeValidator(_tag_pair), WithJsonSchema({"type": "string"})]


class JobFilter(BaseModel):
    """Which jobs: every filter given must match (the user's own jobs only).

    The query string of ``GET /jobs``, ``GET /jobs/counts`` and ``DELETE /jobs``: the
    route reads it as this model, the service turns it into SQL, and the client's
    ``jobs.filter/page/count/counts/delete_where`` take these names as keywords
    (:class:`JobFilterKwargs`). Unknown query parameters are ignored, as before
    (``ordering``, ``limit`` and ``offset`` arrive in the same query string).
    """

    id: list[Id] | None = Field(default=None, description="job ids (repeatable)")
    state: list[JobState] | None = Field(default=None, description="states (repeatable)")
    tags: Annotated[list[TagMatch] | None, BeforeValidator(_tag_pairs)] = Field(
        default=None, description="key:value (repeatable, all must match)"
    )
    site_id: Id32 | None = None
    app_id: Id32 | None = None
    #: children of this job.
    parent_id: Id | None = None
    session_id: Id32 | None = None
    batch_job_id: Id32 | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None

    _no_nul = field_validator("*")(no_nul)

    def tag_dict(self) -> Tags:
        """The tags to match; a key given twice keeps its last value."""
        return dict(self.tags or ())

    def is_empty(self) -> bool:
        """Nothing to filter by (every job matches)."""
        return all(getattr(self, name) in (None, []) for name in type(self).model_fields)


class JobFilterKwargs(TypedDict, total=False):
    """:class:`JobFilter` as the client's keywords, where ``id`` and ``state`` take one
    value or several and ``tags`` a dict. The same names as JobFilter's fields
    (suites/api/test_client.py holds them equal); values are sent as given and the
    server validates them."""

    id: int | Iterable[int] | None
    state: JobState | str | Iterable[JobState | str] | None
    tags: Tags | None
    site_id: int | None
    app_id: int | None
    parent_id: int | None
    session_id: int | None
    batch_job_id: int | None
    created_after: datetime | None
    created_before: datetime | None
    updated_after: datetime | None
    updated_before: datetime | None


class Event(Reply):
    id: int
    job_id: int
    from_state: JobState | None
    to_state: JobState
    timestamp: datetime
    data: dict[str, Any]


class DeleteResult(Reply):
    deleted: int


# ---------------------------------------------------------------- batch jobs and sessions


class JobMode(StrEnum):
    MPI = "mpi"
    SERIAL = "serial"


class BatchJobCreate(Request):
    site_id: Id32
    num_nodes: int = Field(ge=1, le=100_000)
    wall_time_min: int = Field(ge=1, le=100_000)
    job_mode: JobMode = JobMode.MPI
    project: Name = ""
    queue: Name = ""
    filter_tags: TagsIn = Field(default_factory=dict)
    #: extra scheduler options, rendered into the batch script by the scheduler class.
    options: Environment = Field(default_factory=dict)


class BatchJobUpdate(Request):
    id: Id32 | None = None
    state: BatchJobState | None = None
    scheduler_id: Name | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    status_info: Data | None = None


class BatchJob(Reply):
    id: int
    site_id: int
    scheduler_id: str | None
    project: str
    queue: str
    num_nodes: int
    wall_time_min: int
    job_mode: JobMode
    filter_tags: Tags
    options: dict[str, str]
    state: BatchJobState
    status_info: dict[str, Any]
    start_time: datetime | None
    end_time: datetime | None
    created_at: datetime
    updated_at: datetime

    def _repr_html_(self) -> str:
        from runner.html import fields_table

        def when(t: datetime | None) -> str:
            return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"

        fields: list[tuple[str, Any]] = [
            ("state", self.state.value),
            ("site", self.site_id),
            ("scheduler id", self.scheduler_id or "-"),
            ("nodes", f"{self.num_nodes} x {self.wall_time_min} min ({self.job_mode.value} mode)"),
            ("queue / project", f"{self.queue or '-'} / {self.project or '-'}"),
            ("runs jobs tagged", ", ".join(f"{k}={v}" for k, v in self.filter_tags.items()) or "any"),
            ("started / ended", f"{when(self.start_time)} / {when(self.end_time)}"),
        ]
        if self.state in (BatchJobState.FAILED, BatchJobState.SUBMIT_FAILED):
            fields.insert(1, ("why", self.status_info.get("error") or self.status_info.get("reason") or "-"))
        return fields_table(f"batch job {self.id}", fields)


class SessionCreate(Request):
    site_id: Id32
    batch_job_id: Id32 | None = None
    #: seconds without a heartbeat after which the session expires.
    ttl_sec: float = Field(default=60.0, gt=0, le=86_400)


class Session(Reply):
    id: int
    site_id: int
    batch_job_id: int | None
    heartbeat: datetime
    expires_at: datetime
    ttl_sec: float


class AcquireSpec(Request):
    """What a launcher session can take now.

    Jobs in RUNNABLE states, not held by another session, of this site, matching
    ``filter_tags``, are taken in order (largest ``num_nodes`` first, then oldest)
    while they fit: at most ``max_num_jobs``; each needs ``num_nodes`` <=
    ``max_nodes_per_job`` and ``wall_time_min`` <= ``max_wall_time_min`` (0: no
    limit on either side); the sum of ``num_nodes / node_packing_count`` stays <=
    ``max_aggregate_nodes``. ``serial_only`` takes only single-node, single-rank jobs.

    ``request_id`` names the acquire. Sent again with the same ``request_id`` as the
    session's last acquire (its answer never came: the connection dropped, the server
    was killed after its commit), the request is answered with the jobs that acquire
    held and the session still holds, and nothing more is taken: a client keeps one
    ``request_id`` until an answer reaches it. Without one, every request takes more.
    """

    max_num_jobs: int = Field(ge=1, le=MAX_BULK)
    max_nodes_per_job: int | None = Field(default=None, ge=1, le=INT32_MAX)
    max_aggregate_nodes: float | None = Field(default=None, gt=0)
    max_wall_time_min: float | None = Field(default=None, ge=0)
    serial_only: bool = False
    filter_tags: TagsIn = Field(default_factory=dict)
    app_ids: list[Id32] | None = Field(default=None, max_length=MAX_BULK)
    request_id: str | None = Field(default=None, min_length=1, max_length=64)


class JobReport(Request):
    """What a launcher saw happen to one job it runs, for ``POST /sessions/{id}/reports``.

    ``attempt`` is the job's attempt when the launcher acquired it: a report about an
    attempt that is over (the job was retried, killed, or taken by another session) is
    answered as moot instead of changing the job. ``timestamp`` is when it happened
    (reports may arrive long after, e.g. after an outage).
    """

    id: Id
    attempt: int = Field(ge=0, le=INT32_MAX)
    state: JobState
    timestamp: datetime
    state_data: Parameters = Field(default_factory=dict)
    return_code: Int32 | None = None
    #: replaces the job's ``data`` (a python-function job's result).
    data: Data | None = None
    #: when the run began, on an outcome (RUN_DONE, RUN_ERROR, RUN_TIMEOUT) whose RUNNING
    #: was not reported on its own: a task that ended before its launcher sent its start
    #: says both in one report, and the server records the RUNNING Event at this time first.
    run_started: datetime | None = None

    # only these fields can hold text: the check runs for them alone (per report, not
    # per field: half the cost of reading a launcher's batch)
    _no_nul = field_validator("state_data", "data")(no_nul)

    @field_validator("run_started")
    @classmethod
    def _run_started(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        state = info.data.get("state")
        if value is not None and state is not None and state not in RUN_OUTCOMES:
            outcomes = ", ".join(s.value for s in sorted(RUN_OUTCOMES))
            raise ValueError(f"only an outcome ({outcomes}) carries the run's start")
        return value


class MootReport(Reply):
    """A report the server will never apply, and why (the launcher stops sending it)."""

    id: int
    attempt: int
    state: JobState
    reason: str


class ReportResult(Reply):
    """The answer to a batch of reports: each one is either applied or moot."""

    accepted: int
    moot: list[MootReport]


class StateCount(Reply):
    state: JobState
    count: int


class Health(Reply):
    status: Literal["ok"] = "ok"
    version: str
    schema_revision: str | None
    database: str


# ---------------------------------------------------------------- published runs (docs/results.md)

#: ``tests``: a harness run's report.json; ``bench``: a ``tolu bench`` bench.json;
#: ``pipeline``: the integration pipeline's report.json.
RunKind = Literal["tests", "bench", "pipeline"]
#: a run's id as its publisher names it: letters, digits and ``_.:+-`` (it names folders too).
RUN_ID_PATTERN = r"^[A-Za-z0-9_.:+-]+$"


def scenario_key(command: str, name: str, parameters: Mapping[str, Any]) -> str:
    """What names one benchmark scenario across runs: the command, the scenario's name and
    a digest of its parameters (runs with other parameters measure something else)."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return f"{command}:{name}:{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


class RunPublish(Request):
    """A run to keep: the document as the run wrote it, and where, on what and when it ran."""

    site_id: Id32 = Field(description="the site the run is kept under (its owner's; a site token: its own)")
    kind: RunKind
    run_id: str = Field(
        min_length=1, max_length=256, pattern=RUN_ID_PATTERN, description="publishing it again is a no-op"
    )
    location: str = Field(min_length=1, max_length=256, description="the harness location it ran at")
    machine: str = Field(min_length=1, max_length=256, description="the host it ran on")
    commit: str | None = Field(None, max_length=64, description="the commit of tolu it tested")
    load: list[float] = Field(
        default_factory=list, max_length=3, description="1, 5 and 15-minute load averages at its start"
    )
    started_at: datetime
    #: its integers within 64 bits, like any JSON object's here (the fuzzer found the 500)
    document: Annotated[dict[str, Any], _json_size(RUN_DOCUMENT_MAX_BYTES)] = Field(
        description="report.json, bench.json or the pipeline's report.json, checked against its JSON Schema"
    )


class Reason(Reply):
    """Tests (or aims, or steps) that ended the same way for the same reason."""

    outcome: str
    reason: str
    count: int
    #: the first few of them (test ids, ``scenario: figure``, step names)
    names: list[str]


class AreaSummary(Reply):
    """One area of a run: ``outcome`` is failed when anything failed, skipped when nothing ran."""

    area: str
    outcome: Literal["passed", "failed", "skipped"]
    passed: int
    failed: int
    error: int
    skipped: int
    xfailed: int
    xpassed: int
    total: int


class RunScenario(Reply):
    key: str
    command: str
    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class Run(Reply):
    id: int
    site_id: int
    run_id: str
    kind: RunKind
    title: str
    location: str
    machine: str
    commit: str | None
    load: list[float]
    started_at: datetime
    duration_s: float | None
    ok: bool
    summary: dict[str, int]
    digest: str
    published_at: datetime
    areas: list[AreaSummary] = Field(default_factory=list)
    scenarios: list[RunScenario] = Field(default_factory=list)


class MatrixRow(Reply):
    site_id: int
    site_name: str
    location: str


class MatrixCell(AreaSummary):
    """The last run of a row that covered an area in a night, and what it says of the area."""

    site_id: int
    location: str
    night: date
    run: int
    run_id: str
    kind: RunKind
    started_at: datetime
    commit: str | None
    reasons: list[Reason]
    #: reasons not stored (the rest of a long list)
    more_reasons: int = 0


class Matrix(Reply):
    after: datetime
    before: datetime
    #: newest first; a night is the UTC date a run started on
    nights: list[date]
    rows: list[MatrixRow]
    areas: list[str]
    cells: list[MatrixCell]


class FigureInfo(Reply):
    unit: str
    better: str
    aim: str | None = None
    description: str = ""


class FigureStat(Reply):
    median: float | None
    min: float | None
    max: float | None


class TrendPoint(Reply):
    run: int
    run_id: str
    site_id: int
    location: str
    machine: str
    commit: str | None
    load: list[float]
    started_at: datetime
    figures: dict[str, FigureStat]


class Trend(Reply):
    #: None when no run of the scenario matches
    scenario: RunScenario | None
    #: what each figure is, as the newest run described it
    figure_info: dict[str, FigureInfo]
    #: oldest first
    points: list[TrendPoint]


class ScenarioSummary(RunScenario):
    runs: int
    last_started_at: datetime
    locations: list[str]
    site_ids: list[int]


# ---------------------------------------------------------------- statistics (web interface)


class SiteStats(Reply):
    """One site card: is its agent alive, its jobs by state, its allocations and nodes."""

    site_id: int
    name: str
    hostname: str
    last_heartbeat: datetime | None
    #: a heartbeat within the last ``agent_alive_sec`` seconds (server clock).
    agent_alive: bool
    agent_alive_sec: float
    #: state -> number of jobs (states with none are left out).
    jobs: dict[JobState, int]
    batch_jobs_queued: int
    batch_jobs_running: int
    #: nodes of the site's running allocations, and how many of them running jobs use
    #: (a job uses num_nodes / node_packing_count).
    nodes_total: int
    nodes_busy: float
    nodes_free: float


class HistoryFilter(BaseModel):
    """Which Events a history aggregates (the user's own): the query string of
    ``GET /stats/history``. Every filter given must match.

    ``after``/``before`` bound the time axis (default: a batch job's lifetime with
    ``batch_job_id``, else the first matching Event until now); the span is cut into
    at most ``buckets`` intervals of a round length (1 s, 5 s, ..., 1 h, 1 d, ...).
    """

    site_id: Id32 | None = None
    app_id: Id32 | None = None
    #: only jobs that ran in this batch job; the time axis defaults to its lifetime.
    batch_job_id: Id32 | None = None
    tags: Annotated[list[TagMatch] | None, BeforeValidator(_tag_pairs)] = Field(
        default=None, description="key:value (repeatable, all must match)"
    )
    after: datetime | None = None
    before: datetime | None = None
    buckets: int = Field(default=120, ge=1, le=1_000, description="most points on the time axis")

    _no_nul = field_validator("*")(no_nul)

    def tag_dict(self) -> Tags:
        return dict(self.tags or ())


class HistoryPoint(Reply):
    """One interval of a history: what happened in [time, time + interval_sec)."""

    time: datetime
    #: jobs that reached JOB_FINISHED / FAILED in the interval.
    finished: int
    failed: int
    #: running jobs (busy slots), time-averaged over the interval.
    running: float
    #: nodes used by running jobs, time-averaged over the interval.
    busy_nodes: float
    #: nodes of running allocations (batch jobs), time-averaged over the interval.
    available_nodes: float


class History(Reply):
    start: datetime
    end: datetime
    interval_sec: float
    points: list[HistoryPoint]
    #: totals over [start, end).
    finished: int
    failed: int
# ---------------------------------------------------------------- DAG prototypes

#: the placeholders a DAG node may use besides the DAG's own parameters: the instance's
#: index in its run, the run's id and the DAG's name.
DAG_BUILTINS = ("instance", "run", "dag")
#: tags every job of a DAG run carries (a run, an instance, a node are selected by them).
DAG_RUN_TAG, DAG_INSTANCE_TAG, DAG_NODE_TAG = "dag_run", "dag_instance", "dag_node"
#: most jobs (instances x nodes) one DAG run may create; it is one request and one transaction.
MAX_RUN_JOBS = 100_000
#: most nodes a DAG may have.
MAX_DAG_NODES = 1_000

_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"


class DagNode(Request):
    """One job of every instance of a DAG: an app, its parameters, the nodes it waits for.

    String values (parameters, tags, workdir, environment, transfer ends) may hold
    ``{name}`` placeholders of the DAG's parameters or of ``instance``, ``run``, ``dag``;
    a value that is exactly ``{name}`` becomes the parameter's value with its type.
    The default workdir is ``dags/<dag>/<run>/<instance>/<node>``, so a node finds its
    parents' files at ``../<parent>/``.
    """

    name: str = Field(min_length=1, max_length=128, pattern=_NAME_PATTERN)
    #: the app's name at the DAG's site.
    app: str = Field(min_length=1, max_length=256)
    #: bounded as a job's (JobCreate): each node becomes one in every run
    parents: list[str] = Field(default_factory=list, max_length=MAX_BULK)
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None
    retry_limit: int = Field(default=3, ge=0, le=1_000)
    workdir: str | None = None
    transfers: list[TransferItemCreate] = Field(default_factory=list, max_length=MAX_BULK)


class DagCreate(Request):
    """A DAG prototype. Defining one with the name of an existing DAG stores a new
    version, unless nothing changed (then the latest version is answered)."""

    name: str = Field(min_length=1, max_length=256, pattern=_NAME_PATTERN)
    site_id: Id32
    description: str = ""
    #: parameter name -> default value; ``None`` marks a required parameter.
    parameters: dict[str, Any] = Field(default_factory=dict)
    nodes: list[DagNode] = Field(min_length=1, max_length=MAX_DAG_NODES)


class Dag(Reply):
    id: int
    name: str
    version: int
    site_id: int
    description: str
    parameters: dict[str, Any]
    nodes: list[DagNode]
    created_at: datetime

    def layers(self) -> list[list[DagNode]]:
        """The nodes by depth: those without parents first, each node one layer below its
        deepest parent (a stored DAG has no cycle)."""
        depth: dict[str, int] = {}
        by_name = {n.name: n for n in self.nodes}

        def of(name: str) -> int:
            if name not in depth:
                parents = by_name[name].parents
                depth[name] = 1 + max((of(p) for p in parents), default=-1)
            return depth[name]

        out: list[list[DagNode]] = []
        for node in self.nodes:
            d = of(node.name)
            while len(out) <= d:
                out.append([])
            out[d].append(node)
        return out

    def _repr_html_(self) -> str:
        from runner.html import fields_table

        layers = " → ".join(", ".join(f"{n.name} ({n.app})" for n in layer) for layer in self.layers())
        return fields_table(
            f"DAG {self.name} v{self.version} (id {self.id})",
            [
                ("parameters", describe_parameters(self.parameters)),
                ("nodes", layers),
                ("site", self.site_id),
                ("description", self.description or "-"),
            ],
        )


class DagInstance(Request):
    """One instance of a run: its parameters (over the DAG's defaults) and extra tags."""

    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)


class DagRunCreate(Request):
    """Instantiate a DAG: every instance's jobs, created in one request, all or nothing."""

    instances: list[DagInstance] = Field(min_length=1, max_length=MAX_RUN_JOBS)
    #: tags on every job of the run.
    tags: Tags = Field(default_factory=dict)
    #: run at another site (its apps of the same names) [default: the DAG's site].
    site_id: Id32 | None = None


class DagRun(Reply):
    id: int
    dag_id: int
    dag_name: str
    version: int
    site_id: int
    instances: int
    jobs: int
    tags: Tags
    created_at: datetime


class DagInstanceState(StrEnum):
    """An instance as a unit: ``failed`` if any job failed, ``killed`` if any was killed,
    ``finished`` when all finished, ``running`` while any job is past PREPROCESSED, else
    ``waiting``."""

    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"


class DagInstanceStatus(Reply):
    index: int
    state: DagInstanceState
    #: jobs per state.
    jobs: dict[JobState, int]
    parameters: dict[str, Any]


class DagRunStatus(Reply):
    run: DagRun
    #: jobs of the run per state.
    jobs: dict[JobState, int]
    #: instances per instance state.
    instances: dict[DagInstanceState, int]
    #: each instance (only when asked for, or for one instance).
    detail: list[DagInstanceStatus] | None = None


class KillResult(Reply):
    killed: int
