"""Initial tables: profiles, runs, component_runs, leases (see modelmanager.index.models).

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Frozen: later changes go into new revisions. Timestamps are plain
``DateTime(timezone=True)`` here; the UTC handling lives in the model's type.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("cache_key", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cache_key", name=op.f("pk_leases")),
    )
    op.create_table(
        "profiles",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("format_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_profiles")),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("platform_id", sa.String(length=255), nullable=False),
        sa.Column("video_id", sa.String(length=255), nullable=False),
        sa.Column("config_hash", sa.String(length=255), nullable=False),
        sa.Column("sampling_policy_version", sa.String(length=255), nullable=False),
        sa.Column("dataprocessor_version", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mapping_source", sa.Text(), nullable=False),
        sa.Column("manifest_path", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'ok', 'failed')", name=op.f("ck_runs_status")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_video", "runs", ["platform_id", "video_id"], unique=False)
    op.create_table(
        "component_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("platform_id", sa.String(length=255), nullable=False),
        sa.Column("video_id", sa.String(length=255), nullable=False),
        sa.Column("component", sa.String(length=255), nullable=False),
        sa.Column("cache_key", sa.String(length=255), nullable=False),
        sa.Column("model_signature", sa.String(length=255), nullable=False),
        sa.Column("producer_version", sa.String(length=255), nullable=False),
        sa.Column("schema_version", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=255), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("device", sa.String(length=255), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("oom_retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=True),
        sa.Column("artifact_size", sa.BigInteger(), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'cached', 'failed', 'invalidated')",
            name=op.f("ck_component_runs_status"),
        ),
        sa.CheckConstraint("oom_retries >= 0", name=op.f("ck_component_runs_oom_retries")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_component_runs_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_runs")),
        sa.UniqueConstraint("run_id", "component", name="uq_component_runs_run_component"),
    )
    op.create_index(
        "ix_component_runs_lookup",
        "component_runs",
        ["cache_key", "status", "finished_at"],
        unique=False,
    )
    op.create_index(
        "ix_component_runs_signature", "component_runs", ["model_signature"], unique=False
    )
    op.create_index(
        "ix_component_runs_video", "component_runs", ["platform_id", "video_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_component_runs_video", table_name="component_runs")
    op.drop_index("ix_component_runs_signature", table_name="component_runs")
    op.drop_index("ix_component_runs_lookup", table_name="component_runs")
    op.drop_table("component_runs")
    op.drop_index("ix_runs_video", table_name="runs")
    op.drop_table("runs")
    op.drop_table("profiles")
    op.drop_table("leases")
