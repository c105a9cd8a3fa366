"""jobs.attempt: one more at every move to RESTART_READY

A launcher ties what it reports (and the success it notes in a job's workdir) to
the attempt it ran; the server accepts a report only for the attempt it is about
(services/reports.py). Existing jobs start at attempt 0.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("attempt")
