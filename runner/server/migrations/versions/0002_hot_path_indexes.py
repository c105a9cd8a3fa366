"""hot path indexes: drop the two that only slowed inserts

Tag filters probe job_tags by its primary key (job_id, key) per candidate job, so
the (key, value, job_id) index was never the better plan (and on PostgreSQL with
stale statistics it was a much worse one). Jobs by app are found through the
owner/state index; app deletion is rare.

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
    op.drop_index("ix_job_tags_key_value_job_id", table_name="job_tags")
    op.drop_index("ix_jobs_app_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_app_id", "jobs", ["app_id"], unique=False)
    op.create_index("ix_job_tags_key_value_job_id", "job_tags", ["key", "value", "job_id"], unique=False)
