"""Run outcomes: statuses 'interrupted' and 'abandoned', the worker of a run and its heartbeat.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Frozen: later changes go into new revisions. A run ends ``interrupted`` when its
process was stopped (SIGINT/SIGTERM) and could still record it, ``abandoned``
when its worker died without a word (noticed later from ``worker`` and a stale
``heartbeat_at``). The CHECK constraint changes through batch mode on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('running', 'ok', 'failed', 'collecting')"
_NEW = "status IN ('running', 'ok', 'failed', 'collecting', 'interrupted', 'abandoned')"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.create_check_constraint("status", _NEW)
        batch.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE runs SET status = 'failed' WHERE status IN ('interrupted', 'abandoned')")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("worker")
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.create_check_constraint("status", _OLD)
