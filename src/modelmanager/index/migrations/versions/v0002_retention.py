"""Retention: run status 'collecting', indexes for GC and the orphan check, deletion_audit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Frozen: later changes go into new revisions. SQLite cannot alter a CHECK
constraint in place, so the ``runs`` change goes through Alembic's batch mode
(copy the table, move it back); PostgreSQL drops and re-creates the constraint.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('running', 'ok', 'failed')"
_NEW = "status IN ('running', 'ok', 'failed', 'collecting')"


def _runs_status(check: str) -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.create_check_constraint("status", check)


def upgrade() -> None:
    _runs_status(_NEW)
    op.create_index("ix_runs_status_started", "runs", ["status", "started_at"], unique=False)
    op.create_index("ix_component_runs_artifact", "component_runs", ["artifact_path"], unique=False)
    op.create_table(
        "deletion_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subject_sha256", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_audit")),
    )
    op.create_index(
        "ix_deletion_audit_subject_sha256", "deletion_audit", ["subject_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_deletion_audit_subject_sha256", table_name="deletion_audit")
    op.drop_table("deletion_audit")
    op.drop_index("ix_component_runs_artifact", table_name="component_runs")
    op.drop_index("ix_runs_status_started", table_name="runs")
    op.execute(
        "DELETE FROM component_runs WHERE run_id IN "
        "(SELECT run_id FROM runs WHERE status = 'collecting')"
    )
    op.execute("DELETE FROM runs WHERE status = 'collecting'")
    _runs_status(_OLD)
