"""GPU reservations: memory of a GPU promised to a component placed there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Frozen: later changes go into new revisions. Several workers on one host place
components on its GPUs (R-SCHED-2); each placement reads the host's live
reservations and adds its own in one transaction, so that together they never
promise a GPU more memory than it has (issue 14). A reservation expires at
``expires_at`` (by the database clock) unless released first: a dead worker's
promises lapse.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gpu_reservations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("gpu_uuid", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("component", sa.String(length=255), nullable=False),
        sa.Column("mib", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("mib >= 0", name=op.f("ck_gpu_reservations_mib")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_reservations")),
    )
    op.create_index(
        "ix_gpu_reservations_host", "gpu_reservations", ["host", "expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_gpu_reservations_host", table_name="gpu_reservations")
    op.drop_table("gpu_reservations")
