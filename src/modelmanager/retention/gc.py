"""Garbage collection (R-GC-1..3): apply the retention policy to every video, interrupt-safely.

A collected run (see :mod:`modelmanager.retention.policy` for which) loses its
manifest directory, its temp directory, and every file under
``<video>/<component>/<run_id>/`` (artifacts, crashed writes' temp files) that
no kept row references; empty directories are removed up to the artifact root.

Interrupt safety: per batch of videos, (1) one committed transaction marks the
runs ``collecting`` (their rows, and kept rows whose artifact goes, become
``invalidated``), (2) files are deleted, (3) one transaction deletes the rows of
the ``collecting`` runs. A collection killed anywhere leaves either nothing
decided, or ``collecting`` runs whose files may be partly gone; the next
collection treats ``collecting`` runs as going, deletes what is left of their
files (a missing file is no error) and then their rows. Either way no row
outlives its file and no file outlives its row once a collection has finished.

>>> report = collect_garbage(store, artifact_root, dry_run=True)  # doctest: +SKIP
>>> report.bytes_freed, [r.run_id for r in report.runs]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from modelmanager.index import RunStore
from modelmanager.retention._files import Deletion, FileProgress, aware_now, check_root, video_dir
from modelmanager.retention.policy import CollectedRun, RetentionPolicy, VideoPlan, plan_video
from modelmanager.store.layout import TEMP_DIR_NAME, manifest_relpath, resolve_relpath

__all__ = ["GcReport", "apply_plans", "collect_garbage", "plan_files"]

logger = logging.getLogger(__name__)

# Runs whose decisions are applied together: bounded transactions and memory.
_BATCH_RUNS = 2000


@dataclass(slots=True)
class GcReport:
    """What a collection removed (or, dry run, would remove)."""

    dry_run: bool
    now: datetime
    policy: RetentionPolicy
    runs: list[CollectedRun] = field(default_factory=list)
    runs_kept: int = 0
    component_rows: int = 0
    rows_invalidated: int = 0
    files: int = 0
    bytes_freed: int = 0
    temp_dirs: int = 0
    videos: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        """The stable ``--json`` document of ``modelmanager gc``."""
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "policy": self.policy.to_json_dict(),
            "videos": self.videos,
            "runs_kept": self.runs_kept,
            "runs_collected": len(self.runs),
            "component_rows": self.component_rows,
            "rows_invalidated": self.rows_invalidated,
            "files": self.files,
            "bytes_freed": self.bytes_freed,
            "temp_dirs": self.temp_dirs,
            "runs": [r.to_json_dict() for r in self.runs],
        }


def collect_garbage(
    store: RunStore,
    artifact_root: str | os.PathLike[str],
    *,
    policy: RetentionPolicy | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: FileProgress | None = None,
) -> GcReport:
    """Apply the retention policy to every video in the index (see the module docstring).

    Safe to interrupt (even SIGKILL) and run again; runs left ``collecting`` by an
    interrupted collection are finished first.

    Args:
        policy: default :class:`RetentionPolicy` ().
        now: the clock (aware UTC); default the current time.
        dry_run: decide and measure, change nothing.
        progress: called after each file deleted.

    Raises:
        ArtifactRootMissing: the root is not a directory but the index has runs.
        DatabaseError: the run index failed.
    """
    policy = policy or RetentionPolicy()
    now = aware_now(now)
    root = Path(artifact_root)
    report = GcReport(dry_run=dry_run, now=now, policy=policy)
    videos = store.videos()
    check_root(root, bool(videos))
    if not dry_run:
        store.abandon_dead_runs()  # their files and temp data become collectable
    live_keys = store.live_lease_keys()
    # Interrupted collections first, so their rows go even if the rest fails.
    first = store.collecting_videos()
    seen = set(first)
    order = first + [v for v in videos if v not in seen]
    batch: list[tuple[VideoPlan, Deletion]] = []
    for platform_id, video_id in order:
        runs, rows = store.video_history(platform_id, video_id)
        if not runs:
            continue
        plan = plan_video(runs, rows, policy=policy, now=now, live_keys=live_keys)
        report.videos += 1
        report.runs_kept += len(plan.kept)
        going = set(plan.going)
        report.component_rows += sum(1 for row in rows if row.run_id in going)
        report.rows_invalidated += len(plan.invalidate_row_ids)
        report.runs.extend(plan.collect)
        if not plan.collect and not plan.expired_temp_runs:
            continue
        deletion = plan_files(root, plan)
        report.files += len(deletion.files)
        report.bytes_freed += deletion.bytes
        temp_area = video_dir(root, platform_id, video_id) / TEMP_DIR_NAME
        if temp_area.is_dir():
            report.temp_dirs += sum(
                (temp_area / r).is_dir() for r in (*plan.expired_temp_runs, *plan.going)
            )
        if dry_run:
            continue
        batch.append((plan, deletion))
        if sum(len(p.collect) for p, _ in batch) >= _BATCH_RUNS:
            apply_plans(store, batch, progress)
            batch = []
    if batch and not dry_run:
        apply_plans(store, batch, progress)
    logger.info(
        "gc%s: %d runs, %d files, %d bytes",
        " (dry run)" if dry_run else "",
        len(report.runs),
        report.files,
        report.bytes_freed,
    )
    return report


def apply_plans(
    store: RunStore, batch: list[tuple[VideoPlan, Deletion]], progress: FileProgress | None
) -> None:
    """Decide (commit), delete files, delete rows: the three steps of interrupt safety."""
    going = [run for plan, _ in batch for run in plan.going]
    invalidate = [row_id for plan, _ in batch for row_id in plan.invalidate_row_ids]
    store.mark_collecting(going, invalidate_row_ids=invalidate)
    total = sum(len(d.files) for _, d in batch)
    done = 0
    for _, deletion in batch:
        done = deletion.apply(progress, done, total)
    store.delete_collected(going)


def plan_files(root: Path, plan: VideoPlan) -> Deletion:
    """The files and directories that ``plan`` deletes under the artifact ``root``."""
    deletion = Deletion(root)
    video = video_dir(root, plan.platform_id, plan.video_id)
    # No video directory: none of the layout's files exist (one stat instead of one per file).
    if not video.is_dir():
        prefix = f"{plan.platform_id}/{plan.video_id}/"
        elsewhere = [p for p in plan.delete_paths if not p.startswith(prefix)]
        for relpath in elsewhere:
            with contextlib.suppress(ValueError):
                deletion.add_file(resolve_relpath(root, relpath))
        return deletion
    for relpath in plan.delete_paths:
        try:
            deletion.add_file(resolve_relpath(root, relpath))
        except ValueError:
            logger.warning("row names a path outside the artifact root: %r (skipped)", relpath)
    for run in plan.going:
        _add_run_files(deletion, plan, video, run)
    for run in plan.expired_temp_runs:
        deletion.add_tree(video / TEMP_DIR_NAME / run)
    return deletion


def _add_run_files(deletion: Deletion, plan: VideoPlan, video: Path, run: str) -> None:
    """A going run's own directories: manifest, temp data, ``<component>/<run_id>/``."""
    root = deletion.root
    manifests = resolve_relpath(root, manifest_relpath(plan.platform_id, plan.video_id, run))
    deletion.add_tree(manifests.parent)
    deletion.add_tree(video / TEMP_DIR_NAME / run)
    try:
        components = [e.name for e in os.scandir(video) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    protected = plan.protected_paths
    for component in components:
        if component in (manifests.parent.parent.name, TEMP_DIR_NAME):
            continue
        # The directory of artifact_relpath(platform_id, video_id, component, run).
        deletion.add_tree(
            video / component / run,
            keep=lambda p: p.relative_to(root).as_posix() in protected,
        )
