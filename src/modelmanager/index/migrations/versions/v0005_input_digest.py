"""Input identity: ``runs.input_digest``, the sha256 of the run's input video.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Frozen: later changes go into new revisions. A run over a video records the digest
of the video's bytes (issue 13), so that a later run of the same ``video_id`` with
other bytes can say which digest it replaced. NULL for runs without an input video
(and for every run recorded before this revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("input_digest", sa.String(71), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("input_digest")
