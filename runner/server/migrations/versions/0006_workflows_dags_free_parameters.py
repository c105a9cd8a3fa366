"""workflows: DAG prototypes (dags, dag_runs) and apps.free_parameters

``dags`` holds each version of a parameterised DAG, ``dag_runs`` each instantiation
of one (its jobs are tagged dag_run/dag_instance/dag_node). ``apps.free_parameters``
marks apps whose jobs may pass parameters the app does not declare; every other
app's jobs are checked by parameter name at creation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(
            sa.Column("free_parameters", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "dags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_dags_owner_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_dags_site_id_sites", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_dags"),
        sa.UniqueConstraint("owner_id", "name", "version", name="uq_dags_owner_id_name_version"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "dag_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_dag_runs_owner_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["dag_id"], ["dags.id"], name="fk_dag_runs_dag_id_dags", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name="fk_dag_runs_site_id_sites", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dag_runs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dag_runs_owner_id_dag_id", "dag_runs", ["owner_id", "dag_id"])


def downgrade() -> None:
    op.drop_index("ix_dag_runs_owner_id_dag_id", table_name="dag_runs")
    op.drop_table("dag_runs")
    op.drop_table("dags")
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("free_parameters")
