"""The run index's tables (SQLAlchemy Core: no ORM to import), one Alembic revision each change.

The database is an index over manifests and artifacts (the files are the truth,
D5), plus the profiles (R-MAP-2), the observability rows (R-OBS-1) and the
leases on cache keys being computed (D4)::

    profiles                      runs                              leases
    ─────────────────────         ─────────────────────────────     ──────────────────
    name             PK           run_id                  PK        cache_key      PK
    document         JSON text    platform_id ┐ ix_runs_video       owner
    format_version                video_id    ┘                     acquired_at
    updated_at                    config_hash                       expires_at (db clock)
                                  sampling_policy_version
                                  dataprocessor_version
                                  user_id                 NULL
                                  status  running|ok|failed|collecting|
                                          interrupted|abandoned
                                  worker, heartbeat_at    NULL
                                  mapping_source
                                  manifest_path           NULL
                                  started_at, finished_at NULL
                                        ▲
                                        │ run_id (FK)
      ix_runs_status_started (status, started_at)   GC: runs left 'collecting', stale runs
    component_runs ─────────────────────┘
    ──────────────────────────────────────────────────────────────────────────────
    id PK autoincrement · run_id · platform_id · video_id · component
    cache_key · model_signature · producer_version · schema_version
    status ok|cached|failed|invalidated · cache_hit · error_code NULL
    latency_ms NULL · device NULL · batch_size NULL · oom_retries (0)
    artifact_path NULL (relative to the artifact root) · artifact_size NULL · artifact_sha256 NULL
    started_at · finished_at
      uq_component_runs_run_component  unique (run_id, component)
      ix_component_runs_lookup         (cache_key, status, finished_at)  the cache lookup
      ix_component_runs_video          (platform_id, video_id)   delete-by-video, history
      ix_component_runs_signature      (model_signature)         observability per signature
      ix_component_runs_artifact       (artifact_path)           orphan check: which row knows a file

    deletion_audit                                 one row per delete-video request (R-GC-4)
    ─────────────────────────────────────────────  no content and no ids: the subject is
    id PK · subject_sha256 · actor · requested_at  sha256("<platform_id>/<video_id>")
    finished_at NULL · counts (JSON text)         finished_at NULL: deletion in progress

A run is ``collecting`` from the moment garbage collection (or delete-video)
has decided to remove it until its files and rows are gone: the decision is
committed first, so a collection that is killed midway is finished by the next
one (see :mod:`modelmanager.retention`).

Every timestamp is timezone-aware UTC (:class:`UtcDateTime`): PostgreSQL keeps
``timestamptz``; SQLite keeps fixed-width UTC text, so comparing two stored
values (lease expiry, "newest") compares instants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "AUDIT",
    "COMPONENTS",
    "COMPONENT_STATUSES",
    "GPU_RESERVATIONS",
    "LEASES",
    "PROFILES",
    "RUNS",
    "RUN_STATUSES",
    "UtcDateTime",
    "metadata",
]

# "collecting": garbage collection decided to remove the run and is deleting its files.
# "interrupted": stopped by SIGINT/SIGTERM and recorded so; "abandoned": its worker died.
RUN_STATUSES = ("running", "ok", "failed", "collecting", "interrupted", "abandoned")
# "invalidated": the artifact turned out invalid; the lookup never returns the row again.
COMPONENT_STATUSES = ("ok", "cached", "failed", "invalidated")

# Named constraints, so that later migrations (batch mode on SQLite) can address them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend; naive datetimes are refused.

    SQLite's DATETIME drops the offset and returns naive values; this type
    converts to UTC before storing and marks what it reads as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the run index stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""The run index's schema; Alembic's migrations are compared with it (tests)."""


def _id() -> Column[int]:
    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that aliases the rowid.
    return Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def _required(name: str, type_: Any) -> Column[Any]:
    return Column(name, type_, nullable=False)


def _optional(name: str, type_: Any) -> Column[Any]:
    return Column(name, type_, nullable=True)


PROFILES = Table(
    "profiles",  # a profile: the production source of a run's mapping (R-MAP-2)
    metadata,
    Column("name", String(255), primary_key=True),
    _required("document", Text),
    _required("format_version", Integer),
    _required("updated_at", UtcDateTime),
)

RUNS = Table(
    "runs",  # one run of the DataProcessor over one video
    metadata,
    Column("run_id", String(255), primary_key=True),
    _required("platform_id", String(255)),
    _required("video_id", String(255)),
    _required("config_hash", String(255)),
    _required("sampling_policy_version", String(255)),
    _required("dataprocessor_version", String(255)),
    _optional("user_id", String(255)),
    _required("status", String(16)),
    _required("mapping_source", Text),
    _optional("manifest_path", Text),
    _required("started_at", UtcDateTime),
    _optional("finished_at", UtcDateTime),
    _optional("worker", String(255)),  # host:pid:nonce of the process running it
    _optional("heartbeat_at", UtcDateTime),  # renewed while it runs; stale = worker died
    _optional("input_digest", String(71)),  # sha256 of the input video, if it had one
    CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
    Index("ix_runs_video", "platform_id", "video_id"),
    Index("ix_runs_status_started", "status", "started_at"),
)

COMPONENTS = Table(
    "component_runs",  # one component of one run: its cache key, artifact and metrics
    metadata,
    _id(),
    Column("run_id", String(255), ForeignKey("runs.run_id"), nullable=False),
    _required("platform_id", String(255)),
    _required("video_id", String(255)),
    _required("component", String(255)),
    _required("cache_key", String(255)),
    _required("model_signature", String(255)),
    _required("producer_version", String(255)),
    _required("schema_version", String(255)),
    _required("status", String(16)),
    _required("cache_hit", Boolean),
    _optional("error_code", String(255)),
    _optional("latency_ms", Float),
    _optional("device", String(255)),
    _optional("batch_size", Integer),
    Column("oom_retries", Integer, nullable=False, default=0, server_default="0"),
    _optional("artifact_path", Text),
    _optional("artifact_size", BigInteger),
    _optional("artifact_sha256", String(255)),
    _required("started_at", UtcDateTime),
    _required("finished_at", UtcDateTime),
    CheckConstraint(_one_of("status", COMPONENT_STATUSES), name="status"),
    CheckConstraint("oom_retries >= 0", name="oom_retries"),
    UniqueConstraint("run_id", "component", name="uq_component_runs_run_component"),
    Index("ix_component_runs_lookup", "cache_key", "status", "finished_at"),
    Index("ix_component_runs_video", "platform_id", "video_id"),
    Index("ix_component_runs_signature", "model_signature"),
    Index("ix_component_runs_artifact", "artifact_path"),
)

LEASES = Table(
    "leases",  # a worker's claim on a cache key being computed (D4); expiry by the db clock
    metadata,
    Column("cache_key", String(255), primary_key=True),
    _required("owner", String(255)),
    _required("acquired_at", UtcDateTime),
    _required("expires_at", UtcDateTime),
)

GPU_RESERVATIONS = Table(
    "gpu_reservations",  # GPU memory promised to one component placed there (R-SCHED)
    metadata,
    _id(),
    _required("host", String(255)),
    _required("gpu_uuid", String(255)),
    _required("owner", String(255)),
    _required("component", String(255)),
    _required("mib", Integer),
    _required("created_at", UtcDateTime),
    _required("expires_at", UtcDateTime),
    CheckConstraint("mib >= 0", name="mib"),
    Index("ix_gpu_reservations_host", "host", "expires_at"),
)

# One delete-video request: who, when, how much; never the ids nor any content (R-GC-4).
# subject_sha256 is sha256:<hex> of "<platform_id>/<video_id>" (unsalted): whoever knows a
# video's ids can confirm that it was deleted, while the table itself names no video.
AUDIT = Table(
    "deletion_audit",
    metadata,
    _id(),
    Column("subject_sha256", String(255), nullable=False, index=True),
    _required("actor", String(255)),
    _required("requested_at", UtcDateTime),
    _optional("finished_at", UtcDateTime),  # NULL: the deletion is in progress (0004)
    _required("counts", Text),
)
