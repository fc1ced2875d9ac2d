"""Deletion in progress: ``deletion_audit.finished_at`` may be NULL while a delete-video runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Frozen: later changes go into new revisions. ``delete-video`` now records its
audit row BEFORE it deletes anything, with ``finished_at`` NULL ("in progress"),
and completes it (counts, ``finished_at``) with the rows' deletion. While a row
of a video is in progress, and for every run of the video whose run row the
deletion removed, the run index refuses to publish a computed component of
that video (issue 12: the deletion wins a race with a run). Through batch mode
on SQLite (a column's nullability cannot change in place).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deletion_audit") as batch:
        batch.alter_column("finished_at", existing_type=sa.DateTime(timezone=True), nullable=True)


def downgrade() -> None:
    # A deletion still in progress ends at its request time (it blocked nothing after).
    op.execute("UPDATE deletion_audit SET finished_at = requested_at WHERE finished_at IS NULL")
    with op.batch_alter_table("deletion_audit") as batch:
        batch.alter_column("finished_at", existing_type=sa.DateTime(timezone=True), nullable=False)
