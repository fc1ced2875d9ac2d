"""The run index's records: frozen values that :class:`~modelmanager.index.RunStore` takes and gives.

Every datetime is timezone-aware UTC; naive ones are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from modelmanager.index.models import COMPONENT_STATUSES

__all__ = [
    "CachedArtifact",
    "ComponentRowStatus",
    "ComponentRunRow",
    "DeletionAudit",
    "GpuReservation",
    "Lease",
    "RunRow",
    "RunRowStatus",
]

RunRowStatus = Literal["running", "ok", "failed", "collecting", "interrupted", "abandoned"]
ComponentRowStatus = Literal["ok", "cached", "failed", "invalidated"]


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRow:
    """One run as the index holds it."""

    run_id: str
    platform_id: str
    video_id: str
    config_hash: str
    sampling_policy_version: str
    dataprocessor_version: str
    user_id: str | None
    status: RunRowStatus
    mapping_source: str
    manifest_path: str | None
    started_at: datetime
    finished_at: datetime | None
    worker: str | None = None
    heartbeat_at: datetime | None = None
    input_digest: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentRunRow:
    """One component of one run: cache key, artifact and metrics (R-SIG-4, R-OBS-1).

    ``artifact_path`` is relative to the artifact root. ``id`` is set by the
    database: None on a row to record, the row's id on a row read back.

    Raises:
        ValueError: unknown status, negative ``oom_retries``, or a naive datetime.
    """

    run_id: str
    platform_id: str
    video_id: str
    component: str
    cache_key: str
    model_signature: str
    producer_version: str
    schema_version: str
    status: ComponentRowStatus
    cache_hit: bool
    started_at: datetime
    finished_at: datetime
    error_code: str | None = None
    latency_ms: float | None = None
    device: str | None = None
    batch_size: int | None = None
    oom_retries: int = 0
    artifact_path: str | None = None
    artifact_size: int | None = None
    artifact_sha256: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.status not in COMPONENT_STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {COMPONENT_STATUSES}")
        if self.oom_retries < 0:
            raise ValueError(f"oom_retries must be >= 0, got {self.oom_retries}")
        _require_aware("started_at", self.started_at)
        _require_aware("finished_at", self.finished_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedArtifact:
    """What the cache lookup found: an artifact a reader must still verify (D5)."""

    cache_key: str
    run_id: str
    component: str
    artifact_path: str
    artifact_size: int
    artifact_sha256: str
    schema_version: str
    finished_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A worker's claim on a cache key until ``expires_at`` (database clock).

    The pair (``owner``, ``acquired_at``) identifies this claim: a lease taken
    over after expiry, even by the same owner, is another one.
    """

    cache_key: str
    owner: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletionAudit:
    """One delete-video request as the audit table keeps it: no ids, no content (R-GC-4).

    ``subject_sha256`` is ``sha256:<hex>`` of ``"<platform_id>/<video_id>"``;
    ``counts`` holds ``runs``, ``component_runs``, ``files`` and ``bytes``: what was
    really removed. ``finished_at`` is None while the deletion is in progress (its row is
    written before anything is deleted; ``counts`` is empty until it finishes).
    """

    id: int
    subject_sha256: str
    actor: str
    requested_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class GpuReservation:
    """Memory of one GPU promised to one component until ``expires_at`` (database clock)."""

    id: int
    host: str
    gpu_uuid: str
    owner: str
    component: str
    mib: int
    expires_at: datetime
