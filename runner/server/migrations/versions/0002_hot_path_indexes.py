"""hot path indexes: drop jobs(app_id), which only slowed inserts

Jobs by app are found through the owner/state and site/state indexes; deleting an
app (the one query that wanted it) is rare.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:55:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_jobs_app_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_app_id", "jobs", ["app_id"], unique=False)
