"""hot tables without foreign keys (jobs, events, job_tags, transfer_items)

On PostgreSQL every foreign key is checked per inserted row with a locking lookup;
for Events that was ten times the cost of the insert. The services keep these
references consistent (services/purge.py deletes dependants explicitly).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 19:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: table -> [(constraint, column, referred table)]
DROPPED = {
    "jobs": [
        ("fk_jobs_owner_id_users", "owner_id", "users"),
        ("fk_jobs_site_id_sites", "site_id", "sites"),
        ("fk_jobs_app_id_apps", "app_id", "apps"),
    ],
    "job_tags": [("fk_job_tags_job_id_jobs", "job_id", "jobs")],
    "transfer_items": [
        ("fk_transfer_items_owner_id_users", "owner_id", "users"),
        ("fk_transfer_items_site_id_sites", "site_id", "sites"),
        ("fk_transfer_items_job_id_jobs", "job_id", "jobs"),
    ],
    "events": [
        ("fk_events_owner_id_users", "owner_id", "users"),
        ("fk_events_job_id_jobs", "job_id", "jobs"),
    ],
}


def _kwargs(table: str) -> dict[str, object]:
    return {"table_kwargs": {"sqlite_with_rowid": False}} if table == "job_tags" else {}


def upgrade() -> None:
    for table, fks in DROPPED.items():
        with op.batch_alter_table(table, **_kwargs(table)) as batch:  # type: ignore[arg-type]
            for name, _column, _referred in fks:
                batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, fks in DROPPED.items():
        with op.batch_alter_table(table, **_kwargs(table)) as batch:  # type: ignore[arg-type]
            for name, column, referred in fks:
                batch.create_foreign_key(name, referred, [column], ["id"], ondelete="CASCADE")
