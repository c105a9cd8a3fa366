"""auth: grants, refresh tokens, device codes, audit events; case-insensitive usernames

Usernames become case-insensitive through ``users.name_key`` (the case-folded name,
unique). Existing accounts whose names differ only in case keep working: the oldest
keeps its name, each later one is renamed ``<name>-<id>`` and an ``account.renamed``
audit event tells its owner the new name (``tolu audit ls`` once logged in, which the
owner does with the new name; the admin sees the renames in the migration's output).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("name_key", sa.String(128), nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_audit_events_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_events_user_id_id", "audit_events", ["user_id", "id"])
    op.create_index("ix_audit_events_action_name_key_at", "audit_events", ["action", "name_key", "at"])
    op.create_index("ix_audit_events_action_address_at", "audit_events", ["action", "address", "at"])

    # Plain ALTER TABLE ADD COLUMN and indexes only: on SQLite a batch operation would
    # copy and drop `users`, and dropping it cascades to every site, app and batch job.
    op.add_column("users", sa.Column("name_key", sa.String(128), nullable=True))
    op.add_column("users", sa.Column("role", sa.String(16), nullable=False, server_default="user"))
    op.add_column("users", sa.Column("disabled_at", sa.DateTime, nullable=True))
    op.add_column("users", sa.Column("email", sa.String(320), nullable=True))
    op.add_column("users", sa.Column("oidc_issuer", sa.String(512), nullable=True))
    op.add_column("users", sa.Column("oidc_subject", sa.String(256), nullable=True))
    _fill_name_keys()
    op.create_index("ix_users_name_key", "users", ["name_key"], unique=True)
    op.create_index(
        "ix_users_oidc_issuer_oidc_subject", "users", ["oidc_issuer", "oidc_subject"], unique=True
    )

    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("site_id", sa.Integer, nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("hint", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=True),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
        sa.Column("last_used_at", sa.DateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_grants_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name="fk_grants_site_id_sites", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
        sa.UniqueConstraint("secret_hash", name="uq_grants_secret_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_grants_user_id", "grants", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("grant_id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name="fk_refresh_tokens_grant_id_grants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_refresh_tokens_grant_id", "refresh_tokens", ["grant_id"])
    op.create_table(
        "device_codes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("user_code", sa.String(16), nullable=False),
        sa.Column("client_name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("interval_sec", sa.Float, nullable=False),
        sa.Column("last_poll_at", sa.DateTime, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_device_codes_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_device_codes"),
        sa.UniqueConstraint("code_hash", name="uq_device_codes_code_hash"),
        sa.UniqueConstraint("user_code", name="uq_device_codes_user_code"),
        sqlite_autoincrement=True,
    )


def _fill_name_keys() -> None:
    """name_key for every account; later accounts that collide in case are renamed."""
    conn = op.get_bind()
    users = sa.table(
        "users",
        sa.column("id", sa.Integer),
        sa.column("username", sa.String),
        sa.column("name_key", sa.String),
    )
    audit = sa.table(
        "audit_events",
        sa.column("user_id", sa.Integer),
        sa.column("action", sa.String),
        sa.column("name_key", sa.String),
        sa.column("detail", sa.JSON),
        sa.column("at", sa.DateTime),
    )
    rows = conn.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    taken = {name.casefold() for _id, name in rows}
    seen: set[str] = set()
    for user_id, name in rows:
        key = name.casefold()
        new_name = name
        if key in seen:
            new_name, n = f"{name}-{user_id}", 1
            while new_name.casefold() in taken:
                n += 1
                new_name = f"{name}-{user_id}-{n}"
            taken.add(new_name.casefold())
            key = new_name.casefold()
            print(
                f"tolu migration 0005: user {user_id} {name!r} renamed {new_name!r} "
                "(its name differs only in case from an older account's)"
            )
            conn.execute(
                audit.insert().values(
                    user_id=user_id,
                    action="account.renamed",
                    name_key=key,
                    detail={"from": name, "to": new_name, "why": "usernames are case-insensitive"},
                    at=_now(),
                )
            )
        seen.add(key)
        conn.execute(users.update().where(users.c.id == user_id).values(username=new_name, name_key=key))


def downgrade() -> None:
    op.drop_table("device_codes")
    op.drop_index("ix_refresh_tokens_grant_id", "refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_grants_user_id", "grants")
    op.drop_table("grants")
    op.drop_index("ix_users_oidc_issuer_oidc_subject", "users")
    op.drop_index("ix_users_name_key", "users")
    for column in ("oidc_subject", "oidc_issuer", "email", "disabled_at", "role", "name_key"):
        # SQLite >= 3.35 drops a column in place (a batch copy would cascade, see upgrade).
        op.execute(f"ALTER TABLE users DROP COLUMN {column}")
    for index in (
        "ix_audit_events_action_address_at",
        "ix_audit_events_action_name_key_at",
        "ix_audit_events_user_id_id",
    ):
        op.drop_index(index, "audit_events")
    op.drop_table("audit_events")
