"""The retention policy (R-GC-1..3): which runs of one video stay and which go.

The policy, per video (artifacts never cross videos: the cache key and the
layout both include ``platform_id``/``video_id``)::

    group  = (platform_id, video_id, config_hash, sampling_policy_version, signature_set)
    signature_set(run) = sha256 over the sorted, distinct, newline-joined
                         model_signature values of the run's component rows
                         (empty signatures of components that never resolved left out)

    kept   = per group, the newest successful (status ok) run by finished_at,
             plus the keep_previous (default 2) next-newest successful runs of that group
           + every run in progress (status running)
           + the producer of an artifact whose cache key has a live lease
           + closure: the run that produced (cache_hit false) an artifact that a
             kept run references, so that the cache lookup (which serves the
             producer's ``ok`` row) keeps working for the artifacts that stay
    hard cap: a run that started more than hard_cap_days (60) ago goes even if the
             rules above keep it (a run still ``running`` that long is a dead
             worker's); its artifacts go with it, and the rows of kept runs that
             referenced them become ``invalidated`` (the lookup never serves them)
    collected = every other run: failed runs nothing references, successful runs
             beyond keep_previous, hard-capped runs
    temp data: ``<video>/_tmp/<run_id>/`` of a finished, kept run goes once the
             run started more than temp_ttl_days (7) ago; with the run otherwise

:func:`plan_video` decides, without touching files or the index; applying a plan
is :mod:`modelmanager.retention.gc`'s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from modelmanager.config import Settings
from modelmanager.index import ComponentRunRow, RunRow
from modelmanager.mapping.canonical import sha256_tagged

__all__ = [
    "LIVE_STATUSES",
    "CollectedRun",
    "Reason",
    "RetentionPolicy",
    "VideoPlan",
    "plan_video",
    "signature_set",
]

Reason = Literal["superseded", "failed", "hard_cap", "resumed", "manifest_missing"]

LIVE_STATUSES: Final = ("ok", "cached")
"""Statuses of component rows whose artifact is in use (the lookup may serve it)."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The knobs of R-GC: keep_previous (2), temp_ttl_days (7), hard_cap_days (60).

    Raises:
        ValueError: a negative keep_previous, or a non-positive number of days.
    """

    keep_previous: int = 2
    temp_ttl_days: float = 7.0
    hard_cap_days: float = 60.0

    def __post_init__(self) -> None:
        if self.keep_previous < 0:
            raise ValueError(f"keep_previous must be >= 0, got {self.keep_previous}")
        for name in ("temp_ttl_days", "hard_cap_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy of ``MODELMANAGER_GC_*``."""
        return cls(
            keep_previous=settings.gc_keep_previous,
            temp_ttl_days=settings.gc_temp_ttl_days,
            hard_cap_days=settings.gc_hard_cap_days,
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "keep_previous": self.keep_previous,
            "temp_ttl_days": self.temp_ttl_days,
            "hard_cap_days": self.hard_cap_days,
        }


def signature_set(signatures: Iterable[str]) -> str:
    """The canonical model_signature-set of a run: ``sha256:<hex>`` of the sorted distinct values.

    >>> signature_set(["sha256:b", "sha256:a", "sha256:b"]) == signature_set(["sha256:a", "sha256:b"])
    True
    """
    joined = "\n".join(sorted({s for s in signatures if s}))
    return sha256_tagged(joined.encode())


# -- planning (pure) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectedRun:
    """A run that garbage collection removes, and why."""

    run_id: str
    platform_id: str
    video_id: str
    status: str
    started_at: datetime
    reason: Reason

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "platform_id": self.platform_id,
            "video_id": self.video_id,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class VideoPlan:
    """What garbage collection decides for one video (see the module docstring)."""

    platform_id: str
    video_id: str
    kept: frozenset[str]
    collect: tuple[CollectedRun, ...]
    invalidate_row_ids: tuple[int, ...]
    protected_paths: frozenset[str]
    delete_paths: tuple[str, ...]
    expired_temp_runs: tuple[str, ...]

    @property
    def going(self) -> list[str]:
        return [c.run_id for c in self.collect]


def plan_video(
    runs: Sequence[RunRow],
    rows: Sequence[ComponentRunRow],
    *,
    policy: RetentionPolicy,
    now: datetime,
    live_keys: frozenset[str] | set[str] = frozenset(),
    only_collecting: bool = False,
) -> VideoPlan:
    """Decide which runs of one video stay and go, and which files and rows go with them.

    ``runs`` and ``rows`` are the video's whole history (:meth:`RunStore.video_history`).
    ``only_collecting``: every run stays but those already ``collecting`` (finishing
    a decision taken elsewhere, e.g. by the orphan fix).
    """
    if not runs:
        raise ValueError("plan_video needs at least one run")
    cap = now - timedelta(days=policy.hard_cap_days)
    ttl = now - timedelta(days=policy.temp_ttl_days)
    by_run: dict[str, list[ComponentRunRow]] = defaultdict(list)
    for row in rows:
        by_run[row.run_id].append(row)
    collecting = {r.run_id for r in runs if r.status == "collecting"}
    capped = {r.run_id for r in runs if r.run_id not in collecting and r.started_at < cap}
    running = {r.run_id for r in runs if r.status == "running" and r.run_id not in capped}

    groups: dict[tuple[str, str, str], list[RunRow]] = defaultdict(list)
    for run in runs:
        if run.status == "ok" and run.run_id not in capped:
            key = (
                run.config_hash,
                run.sampling_policy_version,
                signature_set(row.model_signature for row in by_run[run.run_id]),
            )
            groups[key].append(run)
    kept: set[str] = set(running)
    for members in groups.values():
        members.sort(key=lambda r: (r.finished_at or r.started_at, r.started_at, r.run_id))
        kept.update(r.run_id for r in members[-(1 + policy.keep_previous) :])
    if only_collecting:
        capped = set()
        kept = {r.run_id for r in runs if r.run_id not in collecting}

    producer_of: dict[str, str] = {}
    for row in rows:
        if row.artifact_path and not row.cache_hit and row.status != "failed":
            producer_of.setdefault(row.artifact_path, row.run_id)
    unavailable = capped | collecting
    if live_keys:
        kept.update(
            row.run_id
            for row in rows
            if row.status == "ok" and row.cache_key in live_keys and row.run_id not in unavailable
        )
    pending = list(kept)
    while pending:  # the producers of what kept runs reference stay too
        for row in by_run[pending.pop()]:
            producer = producer_of.get(row.artifact_path or "")
            if row.status in LIVE_STATUSES and producer and producer not in kept | unavailable:
                kept.add(producer)
                pending.append(producer)

    collect = tuple(
        CollectedRun(
            run.run_id,
            run.platform_id,
            run.video_id,
            run.status,
            run.started_at,
            _reason(run, capped, collecting),
        )
        for run in sorted(runs, key=lambda r: (r.started_at, r.run_id))
        if run.run_id not in kept
    )
    going = {c.run_id for c in collect}
    protected: set[str] = set()
    invalidate: list[int] = []
    for run_id in kept:
        for row in by_run[run_id]:
            if row.status not in LIVE_STATUSES or not row.artifact_path:
                continue
            if producer_of.get(row.artifact_path) in going:
                invalidate.append(row.id or 0)
            else:
                protected.add(row.artifact_path)
    delete_paths = sorted(
        {
            row.artifact_path
            for run_id in going
            for row in by_run[run_id]
            if row.artifact_path and row.artifact_path not in protected
        }
    )
    expired = tuple(
        sorted(
            r.run_id
            for r in runs
            if r.run_id in kept
            and r.run_id not in running
            and r.started_at < ttl
            and not only_collecting
        )
    )
    return VideoPlan(
        platform_id=runs[0].platform_id,
        video_id=runs[0].video_id,
        kept=frozenset(kept),
        collect=collect,
        invalidate_row_ids=tuple(sorted(i for i in invalidate if i)),
        protected_paths=frozenset(protected),
        delete_paths=tuple(delete_paths),
        expired_temp_runs=expired,
    )


def _reason(run: RunRow, capped: set[str], collecting: set[str]) -> Reason:
    if run.run_id in collecting:
        return "resumed"
    if run.run_id in capped:
        return "hard_cap"
    return "superseded" if run.status == "ok" else "failed"
