"""The server's tables (SQLAlchemy 2 Core).

Every table is changed only through an Alembic migration in ``migrations/versions``;
``tolu server migrate`` applies them. Rows that a user owns carry ``owner_id``
directly (jobs, events, transfers, batch jobs, sessions), so that scoping a query
to one user never needs a join on the hot path.

Timestamps are naive UTC on both databases. JSON columns hold dicts and lists.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from runner.states import RUNNABLE

#: Deterministic constraint names, so migrations can drop and alter them by name.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

#: A 64-bit key on PostgreSQL that stays SQLite's rowid alias (INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    #: the username case-folded: names are compared by this key, so ``ALICE`` is ``alice``.
    #: (Nullable only because SQLite cannot add NOT NULL to a column in place; always set.)
    Column("name_key", String(128), nullable=True),
    #: empty for accounts that only sign in through the identity provider (SSO).
    Column("password_hash", String(256), nullable=False),
    #: ``user`` or ``admin``.
    Column("role", String(16), nullable=False, server_default="user"),
    Column("disabled_at", DateTime, nullable=True),
    Column("email", String(320), nullable=True),
    #: the OpenID Connect identity this account belongs to (issuer, subject).
    Column("oidc_issuer", String(512), nullable=True),
    Column("oidc_subject", String(256), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Index(None, "name_key", unique=True),
    Index(None, "oidc_issuer", "oidc_subject", unique=True),
    sqlite_autoincrement=True,
)

# Every credential is a grant: a login (password, device code or SSO; renewed by
# rotating refresh tokens) or a token made with `tolu token create` (its secret is
# exchanged for short access tokens). Access tokens name their grant, so revoking
# the grant refuses them at their next request.
grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: ``login`` or ``token``.
    Column("kind", String(16), nullable=False),
    #: how it was obtained: ``password``, ``device``, ``sso`` or ``token``.
    Column("via", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    #: ``full``, ``read`` or ``site`` (then ``site_id``).
    Column("scope", String(16), nullable=False),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=True),
    #: SHA-256 of a token's secret (tokens only; the secret itself is never stored).
    Column("secret_hash", String(64), nullable=True, unique=True),
    #: the first characters of a token, to recognise it in `tolu token ls`.
    Column("hint", String(16), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=True),
    Column("revoked_at", DateTime, nullable=True),
    Column("last_used_at", DateTime, nullable=True),
    Index(None, "user_id"),
    sqlite_autoincrement=True,
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("grant_id", Integer, ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    #: when it was exchanged for its successor (each refresh token is used once).
    Column("used_at", DateTime, nullable=True),
    Index(None, "grant_id"),
    sqlite_autoincrement=True,
)

device_codes = Table(
    "device_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("user_code", String(16), nullable=False, unique=True),
    Column("client_name", String(128), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("interval_sec", Float, nullable=False),
    Column("last_poll_at", DateTime, nullable=True),
    #: ``pending``, ``approved``, ``denied`` or ``used``.
    Column("state", String(16), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sqlite_autoincrement=True,
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True),
    #: the account it concerns (None: a failed login for a name that does not exist).
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("action", String(32), nullable=False),
    #: the case-folded account name a login tried (rate limits count by it).
    Column("name_key", String(128), nullable=True),
    Column("address", String(64), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("at", DateTime, nullable=False),
    Index(None, "user_id", "id"),
    Index(None, "action", "name_key", "at"),
    Index(None, "action", "address", "at"),
    sqlite_autoincrement=True,
)

sites = Table(
    "sites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("path", Text, nullable=False),
    Column("hostname", String(256), nullable=False),
    Column("settings_summary", JSON, nullable=False),
    Column("last_heartbeat", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("owner_id", "name"),
    sqlite_autoincrement=True,
)

apps = Table(
    "apps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("description", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("command_template", Text, nullable=True),
    Column("serialized_function", Text, nullable=True),
    Column("parameters", JSON, nullable=False),
    Column("default_resources", JSON, nullable=False),
    Column("environment", JSON, nullable=False),
    Column("hooks", JSON, nullable=False),
    #: the app takes parameters it does not declare: job parameters are not checked by name.
    Column("free_parameters", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("site_id", "name"),
    Index(None, "owner_id"),
    sqlite_autoincrement=True,
)

batch_jobs = Table(
    "batch_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("scheduler_id", String(256), nullable=True),
    Column("project", String(256), nullable=False),
    Column("queue", String(256), nullable=False),
    Column("num_nodes", Integer, nullable=False),
    Column("wall_time_min", Integer, nullable=False),
    Column("job_mode", String(16), nullable=False),
    Column("filter_tags", JSON, nullable=False),
    Column("options", JSON, nullable=False),
    Column("state", String(32), nullable=False),
    Column("status_info", JSON, nullable=False),
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index(None, "owner_id", "site_id", "state"),
    sqlite_autoincrement=True,
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("batch_job_id", Integer, ForeignKey("batch_jobs.id", ondelete="SET NULL"), nullable=True),
    Column("heartbeat", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("ttl_sec", Float, nullable=False),
    #: the last acquire's request_id and the ids of the jobs it held, comma-separated: a
    #: retry of an acquire whose answer was lost gets those again (services/sessions.py)
    Column("acquire_key", String(64), nullable=True),
    Column("acquired", Text, nullable=True),
    Index(None, "expires_at"),
    Index(None, "owner_id", "site_id"),
    sqlite_autoincrement=True,
)

HELD = text("session_id IS NOT NULL")
IN_BATCH = text("batch_job_id IS NOT NULL")
#: jobs a launcher session may acquire now: in a RUNNABLE state and held by none.
#: Written out with literals, because the partial index below serves only queries
#: whose WHERE repeats it term for term (services/sessions.py uses this very clause).
FREE_TO_RUN = text(
    "session_id IS NULL AND state IN ("
    + ", ".join(f"'{s.value}'" for s in sorted(RUNNABLE, key=lambda s: s.value))
    + ")"
)
KEYED = text("idempotency_key IS NOT NULL")

# The hot tables (jobs, events, job_tags, transfer_items) carry no foreign keys to
# users, sites, apps or jobs: on PostgreSQL each checked key is a locking lookup
# per inserted row (ten times the cost of the insert itself for Events). The
# services keep them consistent instead: rows are only written for owned parents,
# and deleting jobs, apps or sites goes through services/purge.py.
jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("owner_id", Integer, nullable=False),
    Column("site_id", Integer, nullable=False),
    Column("app_id", Integer, nullable=False),
    Column("state", String(32), nullable=False),
    Column("parents", JSON, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("serialized_args", Text, nullable=True),
    Column("tags", JSON, nullable=False),
    Column("environment", JSON, nullable=False),
    Column("workdir", Text, nullable=False),
    Column("num_nodes", Integer, nullable=False),
    Column("ranks_per_node", Integer, nullable=False),
    Column("threads_per_rank", Integer, nullable=False),
    Column("gpus_per_rank", Integer, nullable=False),
    Column("node_packing_count", Integer, nullable=False),
    Column("wall_time_min", Float, nullable=False),
    Column("return_code", Integer, nullable=True),
    Column("retry_count", Integer, nullable=False),
    Column("retry_limit", Integer, nullable=False),
    #: starts at 0, one more at every move to RESTART_READY (services/reports.py).
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("data", JSON, nullable=False),
    Column("batch_job_id", Integer, ForeignKey("batch_jobs.id", ondelete="SET NULL"), nullable=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="SET NULL"), nullable=True),
    #: bookkeeping that spares the hot path a query: does any job name this one as
    #: parent; how many stage-in / stage-out items does it have.
    Column("has_children", Boolean, nullable=False),
    Column("n_stage_in", Integer, nullable=False),
    Column("n_stage_out", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    #: services/idempotency.py: the client's name for the job and a digest of what it asked.
    Column("idempotency_key", String(256), nullable=True),
    Column("create_digest", String(64), nullable=True),
    Index(None, "owner_id", "state"),
    Index(None, "site_id", "state", "session_id"),
    # Partial: most jobs are held by no session and ran in no batch job yet, and
    # rows absent from an index cost nothing to insert.
    Index(None, "session_id", sqlite_where=HELD, postgresql_where=HELD),
    Index(None, "batch_job_id", sqlite_where=IN_BATCH, postgresql_where=IN_BATCH),
    Index(None, "owner_id", "idempotency_key", unique=True, sqlite_where=KEYED, postgresql_where=KEYED),
    sqlite_autoincrement=True,
)
# The acquisition order (largest first, then oldest) of the jobs free to run, per
# site: an acquire reads the rows it takes and stops, whatever the backlog.
Index(
    "ix_jobs_free_to_run",
    jobs.c.site_id,
    jobs.c.num_nodes.desc(),
    jobs.c.id,
    sqlite_where=FREE_TO_RUN,
    postgresql_where=FREE_TO_RUN,
)

job_parents = Table(
    "job_parents",
    metadata,
    Column("child_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("parent_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Index(None, "parent_id"),
)

job_tags = Table(
    "job_tags",
    metadata,
    Column("job_id", BigId, primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", String(1024), nullable=False),
    Index(None, "key", "value", "job_id"),
    # SQLite: the primary key is the table (one b-tree per row, not two).
    sqlite_with_rowid=False,
)

transfer_items = Table(
    "transfer_items",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("owner_id", Integer, nullable=False),
    Column("site_id", Integer, nullable=False),
    Column("job_id", BigId, nullable=False),
    Column("direction", String(8), nullable=False),
    Column("source", Text, nullable=False),
    Column("destination", Text, nullable=False),
    Column("recursive", Boolean, nullable=False),
    Column("state", String(16), nullable=False),
    Column("task_id", String(256), nullable=True),
    Column("error", Text, nullable=True),
    Column("updated_at", DateTime, nullable=False),
    Index(None, "job_id"),
    Index(None, "owner_id", "site_id", "state"),
    sqlite_autoincrement=True,
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("owner_id", Integer, nullable=False),
    Column("site_id", Integer, nullable=False),
    Column("job_id", BigId, nullable=False),
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=False),
    Column("timestamp", DateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Index(None, "job_id"),
)

# The History view's sums, rolled forward from the Events by the queries that read them
# (services/history_rollup.py): per user, site, 10-second cell of Event time and
# node-packing count, the integer sums services/history.py needs. Nothing on the
# launcher's path writes here.
history_cells = Table(
    "history_cells",
    metadata,
    Column("owner_id", Integer, primary_key=True),
    Column("site_id", Integer, primary_key=True),
    #: the cell's start, seconds since 1970 (a multiple of the cell width)
    Column("start_sec", BigInteger, primary_key=True),
    #: node_packing_count of the jobs whose busy nodes are summed here (1: one node each)
    Column("packing", Integer, primary_key=True),
    #: Events summed in (a row at zero holds none and may go)
    Column("events", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    #: changes of running jobs (+1 / -1) and their sum times microseconds into the cell
    Column("dj", BigInteger, nullable=False),
    Column("dj_us", BigInteger, nullable=False),
    #: changes of busy nodes times ``packing`` (num_nodes, or 1) and that times microseconds
    Column("dn", BigInteger, nullable=False),
    Column("dn_us", BigInteger, nullable=False),
    #: the ids of the Events summed in lie between these (a partial cell is read back from them)
    Column("min_event_id", BigInteger, nullable=False),
    Column("max_event_id", BigInteger, nullable=False),
)

#: One row (id 1): how far history_cells has read the Events.
history_rollup = Table(
    "history_rollup",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    #: every Event id up to here is summed in, but for the gaps
    Column("high", BigInteger, nullable=False),
    #: [[lo, hi, first seen (epoch s)], ...]: ids skipped because not yet visible (PostgreSQL)
    Column("gaps", JSON, nullable=False),
)

# DAG prototypes (services/dags.py): a parameterised DAG of app runs, stored once per
# version, instantiated many times. Each run's jobs carry the tags dag_run, dag_instance
# and dag_node, so a run or one instance is listed, watched and killed by tag.
dags = Table(
    "dags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("nodes", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("owner_id", "name", "version"),
    sqlite_autoincrement=True,
)

dag_runs = Table(
    "dag_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("dag_id", Integer, ForeignKey("dags.id", ondelete="CASCADE"), nullable=False),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("instances", Integer, nullable=False),
    Column("jobs", Integer, nullable=False),
    #: the parameters of each instance, in order (instance i is element i).
    Column("parameters", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index(None, "owner_id", "dag_id"),
    sqlite_autoincrement=True,
)

# Published runs (docs/results.md): a harness run's report.json, a `tolu bench` run's
# bench.json or an integration pipeline's report, kept under one of the user's sites.
# The document is stored as it came; what the lists, the matrix and the trends read
# is taken out of it once, at publication, into the columns and the three tables below.
runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("site_id", Integer, ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    #: the publisher's name of the run (report.json's run_id, ...): publishing it again is a no-op.
    Column("run_id", String(256), nullable=False),
    #: ``tests`` (report.json), ``bench`` (bench.json) or ``pipeline`` (the integration report).
    Column("kind", String(16), nullable=False),
    #: what ran, in one line (the pytest arguments, the bench command line).
    Column("title", Text, nullable=False),
    #: the harness location and the host it ran on, the commit it tested, the load average at its start.
    Column("location", String(256), nullable=False),
    Column("machine", String(256), nullable=False),
    Column("commit", String(64), nullable=True),
    Column("load", JSON, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("duration_s", Float, nullable=True),
    Column("ok", Boolean, nullable=False),
    #: counts by outcome (tests), aims met/missed (bench), steps (pipeline).
    Column("summary", JSON, nullable=False),
    #: SHA-256 of the document's canonical JSON: the same run published again is recognised.
    Column("digest", String(64), nullable=False),
    Column("document", JSON, nullable=False),
    Column("published_at", DateTime, nullable=False),
    UniqueConstraint("site_id", "run_id"),
    Index(None, "owner_id", "started_at"),
    Index(None, "site_id", "location", "started_at"),
    sqlite_autoincrement=True,
)

#: per run and area (a test marker such as ``server``; ``bench``, ``pipeline``): the counts by
#: outcome and the reasons of what failed or was skipped, grouped by reason.
run_areas = Table(
    "run_areas",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("area", String(64), primary_key=True),
    #: ``passed``, ``failed`` or ``skipped`` (nothing ran: every test skipped).
    Column("outcome", String(16), nullable=False),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("error", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("xfailed", Integer, nullable=False),
    Column("xpassed", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Index(None, "area", "run_id"),
)

#: per bench run and scenario: ``key`` names the same scenario across runs (command, name and
#: a digest of its parameters: runs with other parameters measure something else).
run_scenarios = Table(
    "run_scenarios",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("key", String(400), nullable=False),
    Column("command", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("parameters", JSON, nullable=False),
    Index(None, "key", "run_id"),
)

#: per bench run, scenario and figure: the summary over the run's trials, and what the figure is.
run_figures = Table(
    "run_figures",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("scenario", String(256), primary_key=True),
    Column("figure", String(128), primary_key=True),
    Column("median", Float, nullable=True),
    Column("min", Float, nullable=True),
    Column("max", Float, nullable=True),
    Column("unit", String(32), nullable=False),
    Column("better", String(8), nullable=False),
    Column("aim", String(64), nullable=True),
    Column("description", Text, nullable=False),
)
