"""results: published runs (runs, run_areas, run_scenarios, run_figures)

A harness run's report.json, a bench.json or an integration pipeline's report,
published under one of the user's sites (docs/results.md). New tables only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("site_id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("location", sa.String(256), nullable=False),
        sa.Column("machine", sa.String(256), nullable=False),
        sa.Column("commit", sa.String(64), nullable=True),
        sa.Column("load", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_runs_owner_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_runs_site_id_sites", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("site_id", "run_id", name="uq_runs_site_id_run_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_runs_owner_id_started_at", "runs", ["owner_id", "started_at"])
    op.create_index("ix_runs_site_id_location_started_at", "runs", ["site_id", "location", "started_at"])

    op.create_table(
        "run_areas",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("area", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        *(
            sa.Column(name, sa.Integer, nullable=False)
            for name in ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "total")
        ),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_areas_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "area", name="pk_run_areas"),
    )
    op.create_index("ix_run_areas_area_run_id", "run_areas", ["area", "run_id"])

    op.create_table(
        "run_scenarios",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_scenarios_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_run_scenarios"),
    )
    op.create_index("ix_run_scenarios_key_run_id", "run_scenarios", ["key", "run_id"])

    op.create_table(
        "run_figures",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("scenario", sa.String(256), nullable=False),
        sa.Column("figure", sa.String(128), nullable=False),
        sa.Column("median", sa.Float, nullable=True),
        sa.Column("min", sa.Float, nullable=True),
        sa.Column("max", sa.Float, nullable=True),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("better", sa.String(8), nullable=False),
        sa.Column("aim", sa.String(64), nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_figures_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "scenario", "figure", name="pk_run_figures"),
    )


def downgrade() -> None:
    op.drop_table("run_figures")
    op.drop_index("ix_run_scenarios_key_run_id", table_name="run_scenarios")
    op.drop_table("run_scenarios")
    op.drop_index("ix_run_areas_area_run_id", table_name="run_areas")
    op.drop_table("run_areas")
    op.drop_index("ix_runs_site_id_location_started_at", table_name="runs")
    op.drop_index("ix_runs_owner_id_started_at", table_name="runs")
    op.drop_table("runs")
