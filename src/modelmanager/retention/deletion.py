"""Delete-by-video (R-GC-4): every run, row and file of one video, and an audit row.

:func:`delete_video` removes every run, component row, artifact, manifest and
temp file of one video, then records one audit row that names no video
(``subject_sha256`` = sha256 of ``"<platform_id>/<video_id>"``) with who, when
and how many.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modelmanager.errors import DeletionBlocked, InvalidRunContext
from modelmanager.index import ComponentRunRow, RunStore
from modelmanager.index.retention_queries import subject_sha256
from modelmanager.mapping.spec import NAME
from modelmanager.retention._files import (
    Deletion,
    FileProgress,
    aware_now,
    check_root,
    file_exists,
    video_dir,
)
from modelmanager.store.layout import resolve_relpath

__all__ = ["DeletionReport", "delete_video", "subject_sha256"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class DeletionReport:
    """What ``delete_video`` removed (or, dry run, would remove)."""

    platform_id: str
    video_id: str
    dry_run: bool
    runs: int = 0
    component_rows: int = 0
    files: int = 0
    bytes_freed: int = 0
    audit_id: int | None = None
    subject_sha256: str = ""
    actor: str = ""

    @property
    def found(self) -> bool:
        return bool(self.runs or self.component_rows or self.files)

    def to_json_dict(self) -> dict[str, Any]:
        """The stable ``--json`` document of ``modelmanager delete-video``."""
        return {
            "platform_id": self.platform_id,
            "video_id": self.video_id,
            "dry_run": self.dry_run,
            "found": self.found,
            "runs": self.runs,
            "component_rows": self.component_rows,
            "files": self.files,
            "bytes_freed": self.bytes_freed,
            "audit_id": self.audit_id,
            "subject_sha256": self.subject_sha256,
            "actor": self.actor,
        }


def delete_video(
    store: RunStore,
    artifact_root: str | os.PathLike[str],
    platform_id: str,
    video_id: str,
    *,
    actor: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    now: datetime | None = None,
    progress: FileProgress | None = None,
) -> DeletionReport:
    """Delete every artifact, manifest, temp file and row of one video (R-GC-4); audit it.

    Interrupt-safe like garbage collection: the runs are marked ``collecting``
    first; a second call finishes what a killed one left, and a call that finds
    nothing reports nothing (and still records the request in the audit).

    Args:
        actor: who asked (default: the OS user), for the audit row.
        force: delete even while a run of the video is ``running`` (a dead worker's).

    Raises:
        InvalidRunContext: an id is not a path-safe name.
        DeletionBlocked: a run of the video is in progress and ``force`` is not set
            (a dry run reports what would go regardless).
    """
    for name, value in (("platform_id", platform_id), ("video_id", video_id)):
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise InvalidRunContext(
                f"{name} {value!r} is not a valid name (letters, digits, '_', '.', '-')",
                field=name,
            )
    requested_at = aware_now(now)
    root = Path(artifact_root)
    if not dry_run:
        store.abandon_dead_runs()  # a dead worker's run blocks nothing (issue 12)
    runs, rows = store.video_history(platform_id, video_id)
    check_root(root, bool(runs))
    running = [r.run_id for r in runs if r.status == "running"]
    if running and not force and not dry_run:
        raise DeletionBlocked(
            f"{len(running)} run(s) of {platform_id}/{video_id} are in progress "
            f"({', '.join(running[:3])}); nothing was deleted",
            run_id=running[0],
        )
    deletion = _files_of(root, platform_id, video_id, rows)
    report = DeletionReport(
        platform_id=platform_id,
        video_id=video_id,
        dry_run=dry_run,
        runs=len(runs),
        component_rows=len(rows),
        files=len(deletion.files),
        bytes_freed=deletion.bytes,
        subject_sha256=subject_sha256(platform_id, video_id),
        actor=actor or _os_user(),
    )
    if dry_run:
        return report
    # The request is recorded before anything goes: from here on nothing of the video is
    # published (a run computing it now is refused, issue 12), so the walk below misses
    # no file that a run could still publish.
    audit_id = store.begin_deletion(
        audit_subject=report.subject_sha256, actor=report.actor, requested_at=requested_at
    )
    store.mark_collecting([r.run_id for r in runs], invalidate_row_ids=[])
    deletion = _files_of(root, platform_id, video_id, store.video_history(platform_id, video_id)[1])
    deletion.apply(progress)
    report.files, report.bytes_freed = deletion.removed, deletion.removed_bytes
    audit = store.delete_video_rows(
        platform_id,
        video_id,
        audit_subject=report.subject_sha256,
        actor=report.actor,
        requested_at=requested_at,
        counts={"files": report.files, "bytes": report.bytes_freed},
        audit_id=audit_id,
    )
    report.runs, report.component_rows = audit.counts["runs"], audit.counts["component_runs"]
    report.audit_id = audit.id
    logger.info(
        "deleted video %s: %d runs, %d files", report.subject_sha256, report.runs, report.files
    )
    return report


def _files_of(
    root: Path, platform_id: str, video_id: str, rows: Sequence[ComponentRunRow]
) -> Deletion:
    """Every file of the video: its directory, and files its rows name elsewhere."""
    deletion = Deletion(root)
    deletion.add_tree(video_dir(root, platform_id, video_id))
    for row in rows:  # a row naming a file elsewhere (an older layout) is the video's too
        if row.artifact_path and file_exists(root, row.artifact_path):
            deletion.add_file(resolve_relpath(root, row.artifact_path))
    return deletion


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
