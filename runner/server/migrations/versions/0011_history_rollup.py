"""history_cells and history_rollup: the History view's sums, rolled forward from the Events

``GET /stats/history`` reads 10-second sums per user, site and node-packing count
instead of every Event; the query that needs them rolls them forward from the
Event ids (services/history_rollup.py). Nothing is written on the launcher's path.
An existing database starts empty here: the first history request sums its Events.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SUMS = ("events", "finished", "failed", "dj", "dj_us", "dn", "dn_us", "min_event_id", "max_event_id")


def upgrade() -> None:
    op.create_table(
        "history_cells",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("start_sec", sa.BigInteger(), nullable=False),
        sa.Column("packing", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("owner_id", "site_id", "start_sec", "packing", name="pk_history_cells"),
    )
    rollup = op.create_table(
        "history_rollup",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_history_rollup"),
    )
    op.bulk_insert(rollup, [{"id": 1, "high": 0, "gaps": []}])


def downgrade() -> None:
    op.drop_table("history_rollup")
    op.drop_table("history_cells")
