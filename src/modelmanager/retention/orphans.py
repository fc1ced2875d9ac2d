"""Orphans: files under the artifact root that no row knows, and rows whose file is gone.

:func:`find_orphans` compares the two video by video; ``fix`` deletes the
unknown files, invalidates component rows whose artifact is gone and collects
runs whose manifest is gone (as garbage collection does).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelmanager.index import RunStore
from modelmanager.retention._files import (
    Deletion,
    FileProgress,
    aware_now,
    check_root,
    file_exists,
    video_dir,
)
from modelmanager.retention.gc import apply_plans, plan_files
from modelmanager.retention.policy import LIVE_STATUSES, RetentionPolicy, plan_video
from modelmanager.store.layout import TEMP_DIR_NAME, run_location

__all__ = ["MissingFile", "OrphanReport", "find_orphans"]


@dataclass(frozen=True, slots=True)
class MissingFile:
    """A row whose file is gone: a component row's artifact or a run's manifest."""

    kind: Literal["artifact", "manifest"]
    run_id: str
    relpath: str
    row_id: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "relpath": self.relpath,
            "row_id": self.row_id,
        }


@dataclass(slots=True)
class OrphanReport:
    """Files no row knows, and rows whose file is gone; what ``fix`` did about them."""

    fixed: bool
    unknown_files: list[str] = field(default_factory=list)
    unknown_bytes: int = 0
    missing: list[MissingFile] = field(default_factory=list)
    rows_invalidated: int = 0
    runs_collected: int = 0

    @property
    def clean(self) -> bool:
        return not self.unknown_files and not self.missing

    def to_json_dict(self) -> dict[str, Any]:
        """The stable ``--json`` document of ``modelmanager orphans``."""
        return {
            "fixed": self.fixed,
            "clean": self.clean,
            "unknown_files": self.unknown_files,
            "unknown_bytes": self.unknown_bytes,
            "missing": [m.to_json_dict() for m in self.missing],
            "rows_invalidated": self.rows_invalidated,
            "runs_collected": self.runs_collected,
        }


def find_orphans(
    store: RunStore,
    artifact_root: str | os.PathLike[str],
    *,
    fix: bool = False,
    videos: Iterable[tuple[str, str]] | None = None,
    progress: FileProgress | None = None,
) -> OrphanReport:
    """Compare the artifact root with the index, video by video; optionally fix both sides.

    ``videos``: only these ``(platform_id, video_id)`` (default: every video in
    the index or on disk, and stray files at the top two levels).

    Files of runs in progress (``running``/``collecting``, by the run id in their
    path) are neither orphans nor missing. A run's files under ``_tmp/<run_id>/``
    are known while the run is in the index.

    Fixing deletes unknown files, invalidates component rows whose artifact is
    gone, and collects runs whose manifest is gone (as garbage collection does).

    Raises:
        ArtifactRootMissing: the root is not a directory but the index has runs.
    """
    root = Path(artifact_root)
    if fix:
        store.abandon_dead_runs()  # a dead run's leftovers are orphans to mend
    indexed = store.videos()
    check_root(root, bool(indexed))
    report = OrphanReport(fixed=fix)
    deletion = Deletion(root)
    wanted = (set(indexed) | _videos_on_disk(root, deletion)) if videos is None else set(videos)
    invalidate: list[int] = []
    manifestless: list[str] = []
    for platform_id, video_id in sorted(wanted):
        runs, rows = store.video_history(platform_id, video_id)
        busy = {r.run_id for r in runs if r.status in ("running", "collecting")}
        known_runs = {r.run_id for r in runs}
        known = {row.artifact_path for row in rows if row.artifact_path}
        known.update(r.manifest_path for r in runs if r.manifest_path)
        for path in _files_under(video_dir(root, platform_id, video_id)):
            relpath = path.relative_to(root).as_posix()
            if relpath in known:
                continue
            location = run_location(relpath)
            if location is not None:
                _platform, _video, area, run_of = location
                if run_of in busy or (area == TEMP_DIR_NAME and run_of in known_runs):
                    continue
            deletion.add_file(path)
        for run in runs:
            if run.run_id in busy or not run.manifest_path:
                continue
            if not file_exists(root, run.manifest_path):
                report.missing.append(MissingFile("manifest", run.run_id, run.manifest_path))
                manifestless.append(run.run_id)
        for row in rows:
            if row.run_id in busy or row.status not in LIVE_STATUSES or not row.artifact_path:
                continue
            if not file_exists(root, row.artifact_path):
                report.missing.append(
                    MissingFile("artifact", row.run_id, row.artifact_path, row.id)
                )
                invalidate.append(row.id or 0)
    report.unknown_files = sorted(p.relative_to(root).as_posix() for p in deletion.files)
    report.unknown_bytes = deletion.bytes
    if fix:
        deletion.apply(progress)
        report.rows_invalidated = store.invalidate_rows([i for i in invalidate if i])
        if manifestless:
            store.mark_collecting(manifestless, invalidate_row_ids=[])
            report.runs_collected = len(manifestless)
            for platform_id, video_id in store.collecting_videos():
                if (platform_id, video_id) not in wanted:
                    continue
                runs, rows = store.video_history(platform_id, video_id)
                plan = plan_video(
                    runs, rows, policy=RetentionPolicy(), now=aware_now(None), only_collecting=True
                )
                apply_plans(store, [(plan, plan_files(root, plan))], progress)
    return report


def _files_under(top: Path) -> Iterable[Path]:
    if not top.is_dir():
        return
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            yield Path(dirpath) / name


def _videos_on_disk(root: Path, stray: Deletion) -> set[tuple[str, str]]:
    """``(platform_id, video_id)`` directories under the root; anything else is a stray file."""
    found: set[tuple[str, str]] = set()
    if not root.is_dir():
        return found
    for platform in os.scandir(root):
        if not platform.is_dir(follow_symlinks=False):
            stray.add_file(Path(platform.path))
            continue
        for video in os.scandir(platform.path):
            if video.is_dir(follow_symlinks=False):
                found.add((platform.name, video.name))
            else:
                stray.add_file(Path(video.path))
    return found
