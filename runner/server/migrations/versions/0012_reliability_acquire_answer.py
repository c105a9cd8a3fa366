"""sessions.acquire_key, sessions.acquired: the last acquire's name and the jobs it held

A launcher names each acquire (``AcquireSpec.request_id``) and sends the same name
again until an answer reaches it. When the answer to an acquire that was done was
lost (the server killed after its commit, a proxy's timeout, a dropped connection),
the server answers the retry with the jobs it held for it instead of holding more:
without this, those jobs stayed held by a live session that never heard of them
(services/sessions.py, ``acquire``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("acquire_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("acquired", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("acquired")
        batch.drop_column("acquire_key")
