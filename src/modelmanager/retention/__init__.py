"""Retention (R-GC-1..4): garbage collection, orphan detection and delete-by-video.

One module per purpose:

- :mod:`~modelmanager.retention.policy`: :class:`RetentionPolicy` and :func:`plan_video`,
  which runs of a video stay and which go (pure; the rules are in its docstring);
- :mod:`~modelmanager.retention.gc`: :func:`collect_garbage`, applying the policy to
  every video, safe to interrupt;
- :mod:`~modelmanager.retention.orphans`: :func:`find_orphans`, files no row knows
  and rows whose file is gone;
- :mod:`~modelmanager.retention.deletion`: :func:`delete_video`, everything of one
  video, with an audit row that names no video.

>>> report = collect_garbage(store, artifact_root, dry_run=True)  # doctest: +SKIP
>>> report.bytes_freed, [r.run_id for r in report.runs]  # doctest: +SKIP
"""

from __future__ import annotations

from modelmanager.retention.deletion import DeletionReport, delete_video, subject_sha256
from modelmanager.retention.gc import GcReport, collect_garbage
from modelmanager.retention.orphans import MissingFile, OrphanReport, find_orphans
from modelmanager.retention.policy import (
    CollectedRun,
    RetentionPolicy,
    VideoPlan,
    plan_video,
    signature_set,
)

__all__ = [
    "CollectedRun",
    "DeletionReport",
    "GcReport",
    "MissingFile",
    "OrphanReport",
    "RetentionPolicy",
    "VideoPlan",
    "collect_garbage",
    "delete_video",
    "find_orphans",
    "plan_video",
    "signature_set",
    "subject_sha256",
]
