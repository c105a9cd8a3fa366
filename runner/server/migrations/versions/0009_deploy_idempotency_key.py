"""jobs.idempotency_key: a client-chosen name per job, unique per owner (idempotent creation)

A job sent again with a known idempotency key is answered, not created twice
(services/idempotency.py). The unique index is partial: jobs without a key cost
nothing to insert.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KEYED = sa.text("idempotency_key IS NOT NULL")
INDEX = "ix_jobs_owner_id_idempotency_key"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(256), nullable=True))
        batch.add_column(sa.Column("create_digest", sa.String(64), nullable=True))
    op.create_index(
        INDEX,
        "jobs",
        ["owner_id", "idempotency_key"],
        unique=True,
        sqlite_where=KEYED,
        postgresql_where=KEYED,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("create_digest")
        batch.drop_column("idempotency_key")
