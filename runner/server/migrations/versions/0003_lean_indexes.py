"""lean indexes: partial session/batch-job indexes, job_tags without rowid, no events(owner, time)

Every index entry is paid on each of the ~3 Events and ~1 job row written per
created job. Jobs are looked up by session or batch job only once they have one,
so those indexes hold only such rows. Events are read by job (or by owner in id
order, which the primary key serves). On SQLite, job_tags keeps its rows in its
primary-key b-tree.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 19:12:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HELD = sa.text("session_id IS NOT NULL")
IN_BATCH = sa.text("batch_job_id IS NOT NULL")


def _rebuild_job_tags(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "job_tags", recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
    ) as batch:
        batch.alter_column("value", existing_type=sa.String(1024), existing_nullable=False)


def upgrade() -> None:
    op.drop_index("ix_jobs_session_id", table_name="jobs")
    op.create_index("ix_jobs_session_id", "jobs", ["session_id"], sqlite_where=HELD, postgresql_where=HELD)
    op.drop_index("ix_jobs_batch_job_id", table_name="jobs")
    op.create_index(
        "ix_jobs_batch_job_id", "jobs", ["batch_job_id"], sqlite_where=IN_BATCH, postgresql_where=IN_BATCH
    )
    op.drop_index("ix_events_owner_id_timestamp", table_name="events")
    _rebuild_job_tags(with_rowid=False)


def downgrade() -> None:
    _rebuild_job_tags(with_rowid=True)
    op.create_index("ix_events_owner_id_timestamp", "events", ["owner_id", "timestamp"])
    op.drop_index("ix_jobs_batch_job_id", table_name="jobs")
    op.create_index("ix_jobs_batch_job_id", "jobs", ["batch_job_id"])
    op.drop_index("ix_jobs_session_id", table_name="jobs")
    op.create_index("ix_jobs_session_id", "jobs", ["session_id"])
