"""Retention (R-GC-1..4): garbage collection, orphan detection and delete-by-video.

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

A collected run loses its manifest directory, its temp directory, and every
file under ``<video>/<component>/<run_id>/`` (artifacts, crashed writes' temp
files) that no kept row references; empty directories are removed up to the
artifact root.

Interrupt safety: per batch of videos, (1) one committed transaction marks the
runs ``collecting`` (their rows, and kept rows whose artifact goes, become
``invalidated``), (2) files are deleted, (3) one transaction deletes the rows of
the ``collecting`` runs. A collection killed anywhere leaves either nothing
decided, or ``collecting`` runs whose files may be partly gone; the next
collection treats ``collecting`` runs as going, deletes what is left of their
files (a missing file is no error) and then their rows. Either way no row
outlives its file and no file outlives its row once a collection has finished.

Orphans (:func:`find_orphans`): files under the artifact root that no row
knows, and rows (of runs not in progress) whose file is gone. ``fix`` deletes
the files, invalidates component rows whose artifact is gone and collects runs
whose manifest is gone.

Delete-by-video (:func:`delete_video`): every run, component row, artifact,
manifest and temp file of one video, then one audit row that names no video
(``subject_sha256`` = sha256 of ``"<platform_id>/<video_id>"``) with who, when
and how many.

>>> report = collect_garbage(store, artifact_root, dry_run=True)  # doctest: +SKIP
>>> report.bytes_freed, [r.run_id for r in report.runs]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from modelmanager.config import Settings
from modelmanager.errors import ArtifactRootMissing, DeletionBlocked, InvalidRunContext
from modelmanager.index import ComponentRunRow, RunRow, RunStore
from modelmanager.store.layout import TEMP_DIR_NAME, resolve_relpath

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

logger = logging.getLogger(__name__)

Reason = Literal["superseded", "failed", "hard_cap", "resumed", "manifest_missing"]
Progress = Callable[[int, int], None]
"""``progress(done, total)`` after each file deleted."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_LIVE = ("ok", "cached")
# Runs whose decisions are applied together: bounded transactions and memory.
_BATCH_RUNS = 2000


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
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()


def subject_sha256(platform_id: str, video_id: str) -> str:
    """What the deletion audit stores instead of the ids: ``sha256:<hex>`` of ``"<p>/<v>"``."""
    return "sha256:" + hashlib.sha256(f"{platform_id}/{video_id}".encode()).hexdigest()


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
            if row.status in _LIVE and producer and producer not in kept | unavailable:
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
            if row.status not in _LIVE or not row.artifact_path:
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


# -- files ------------------------------------------------------------------------


@dataclass(slots=True)
class _Deletion:
    """Files and directories to delete under the artifact root, with their sizes."""

    root: Path
    files: dict[Path, int] = field(default_factory=dict)
    dirs: set[Path] = field(default_factory=set)
    """Directories to remove once empty (deepest first), with their empty parents."""

    def add_file(self, path: Path) -> None:
        # Already gone: an interrupted collection deleted it.
        with contextlib.suppress(FileNotFoundError):
            self.files.setdefault(path, os.lstat(path).st_size)
        self.dirs.add(path.parent)

    def add_tree(self, top: Path, keep: Callable[[Path], bool] = lambda _: False) -> None:
        """Every file under ``top`` but those ``keep`` names; ``top`` is removed once empty."""
        if not top.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(top):
            base = Path(dirpath)
            self.dirs.add(base)
            for name in filenames:
                path = base / name
                if not keep(path):
                    self.add_file(path)
            self.dirs.update(base / d for d in dirnames)

    @property
    def bytes(self) -> int:
        return sum(self.files.values())

    def apply(self, progress: Progress | None, done: int = 0, total: int | None = None) -> int:
        """Delete the files, then the emptied directories up to the root; returns files deleted."""
        total = len(self.files) if total is None else total
        for path in self.files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            done += 1
            if progress is not None:
                progress(done, total)
        for directory in sorted(self.dirs, key=lambda p: len(p.parts), reverse=True):
            _remove_empty_up_to(directory, self.root)
        return done


def _remove_empty_up_to(directory: Path, root: Path) -> None:
    current = directory
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty
            return
        current = current.parent


def _video_dir(root: Path, platform_id: str, video_id: str) -> Path:
    return root / platform_id / video_id


def _add_run_files(
    deletion: _Deletion, plan_root: Path, run: str, protected: frozenset[str] | set[str]
) -> None:
    """A going run's own directories: manifest, temp data, ``<component>/<run_id>/``."""
    deletion.add_tree(plan_root / "runs" / run)
    deletion.add_tree(plan_root / TEMP_DIR_NAME / run)
    try:
        components = [e.name for e in os.scandir(plan_root) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    root = deletion.root
    for component in components:
        if component in ("runs", TEMP_DIR_NAME):
            continue
        deletion.add_tree(
            plan_root / component / run,
            keep=lambda p: p.relative_to(root).as_posix() in protected,
        )


def _plan_files(root: Path, plan: VideoPlan) -> _Deletion:
    deletion = _Deletion(root)
    video = _video_dir(root, plan.platform_id, plan.video_id)
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
        _add_run_files(deletion, video, run, plan.protected_paths)
    for run in plan.expired_temp_runs:
        deletion.add_tree(video / TEMP_DIR_NAME / run)
    return deletion


# -- garbage collection -------------------------------------------------------------


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
    progress: Progress | None = None,
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
    now = _aware(now)
    root = Path(artifact_root)
    report = GcReport(dry_run=dry_run, now=now, policy=policy)
    videos = store.videos()
    _check_root(root, bool(videos))
    live_keys = store.live_lease_keys()
    # Interrupted collections first, so their rows go even if the rest fails.
    first = store.collecting_videos()
    seen = set(first)
    order = first + [v for v in videos if v not in seen]
    batch: list[tuple[VideoPlan, _Deletion]] = []
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
        deletion = _plan_files(root, plan)
        report.files += len(deletion.files)
        report.bytes_freed += deletion.bytes
        temp_area = _video_dir(root, platform_id, video_id) / TEMP_DIR_NAME
        if temp_area.is_dir():
            report.temp_dirs += sum(
                (temp_area / r).is_dir() for r in (*plan.expired_temp_runs, *plan.going)
            )
        if dry_run:
            continue
        batch.append((plan, deletion))
        if sum(len(p.collect) for p, _ in batch) >= _BATCH_RUNS:
            _apply(store, batch, progress)
            batch = []
    if batch and not dry_run:
        _apply(store, batch, progress)
    logger.info(
        "gc%s: %d runs, %d files, %d bytes",
        " (dry run)" if dry_run else "",
        len(report.runs),
        report.files,
        report.bytes_freed,
    )
    return report


def _apply(
    store: RunStore, batch: list[tuple[VideoPlan, _Deletion]], progress: Progress | None
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


def _check_root(root: Path, has_runs: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ArtifactRootMissing(f"the artifact root {root} is not a directory", path=str(root))
    if has_runs and not root.is_dir():
        raise ArtifactRootMissing(
            f"the artifact root {root} does not exist, but the run index has runs",
            path=str(root),
        )


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    return now.astimezone(UTC)


# -- orphans ------------------------------------------------------------------------


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
    progress: Progress | None = None,
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
    indexed = store.videos()
    _check_root(root, bool(indexed))
    report = OrphanReport(fixed=fix)
    deletion = _Deletion(root)
    wanted = (set(indexed) | _videos_on_disk(root, deletion)) if videos is None else set(videos)
    invalidate: list[int] = []
    manifestless: list[str] = []
    for platform_id, video_id in sorted(wanted):
        runs, rows = store.video_history(platform_id, video_id)
        busy = {r.run_id for r in runs if r.status in ("running", "collecting")}
        known_runs = {r.run_id for r in runs}
        known = {row.artifact_path for row in rows if row.artifact_path}
        known.update(r.manifest_path for r in runs if r.manifest_path)
        video = _video_dir(root, platform_id, video_id)
        for path in _files_under(video):
            relpath = path.relative_to(root).as_posix()
            parts = relpath.split("/")
            run_of = parts[3] if len(parts) > 4 else None
            if relpath in known or run_of in busy:
                continue
            if parts[2] == TEMP_DIR_NAME and run_of in known_runs:
                continue
            deletion.add_file(path)
        for run in runs:
            if run.run_id in busy or not run.manifest_path:
                continue
            if not _exists(root, run.manifest_path):
                report.missing.append(MissingFile("manifest", run.run_id, run.manifest_path))
                manifestless.append(run.run_id)
        for row in rows:
            if row.run_id in busy or row.status not in _LIVE or not row.artifact_path:
                continue
            if not _exists(root, row.artifact_path):
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
                    runs, rows, policy=RetentionPolicy(), now=_aware(None), only_collecting=True
                )
                _apply(store, [(plan, _plan_files(root, plan))], progress)
    return report


def _exists(root: Path, relpath: str) -> bool:
    try:
        return resolve_relpath(root, relpath).is_file()
    except ValueError:
        return False


def _files_under(top: Path) -> Iterable[Path]:
    if not top.is_dir():
        return
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            yield Path(dirpath) / name


def _videos_on_disk(root: Path, stray: _Deletion) -> set[tuple[str, str]]:
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


# -- delete by video ------------------------------------------------------------------


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
    progress: Progress | None = None,
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
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise InvalidRunContext(
                f"{name} {value!r} is not a valid name (letters, digits, '_', '.', '-')",
                field=name,
            )
    requested_at = _aware(now)
    root = Path(artifact_root)
    runs, rows = store.video_history(platform_id, video_id)
    _check_root(root, bool(runs))
    running = [r.run_id for r in runs if r.status == "running"]
    if running and not force and not dry_run:
        raise DeletionBlocked(
            f"{len(running)} run(s) of {platform_id}/{video_id} are in progress "
            f"({', '.join(running[:3])}); nothing was deleted",
            run_id=running[0],
        )
    deletion = _Deletion(root)
    deletion.add_tree(_video_dir(root, platform_id, video_id))
    for row in rows:  # a row naming a file elsewhere (an older layout) is the video's too
        if row.artifact_path and _exists(root, row.artifact_path):
            deletion.add_file(resolve_relpath(root, row.artifact_path))
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
    store.mark_collecting([r.run_id for r in runs], invalidate_row_ids=[])
    deletion.apply(progress)
    audit = store.delete_video_rows(
        platform_id,
        video_id,
        audit_subject=report.subject_sha256,
        actor=report.actor,
        requested_at=requested_at,
        counts={"files": report.files, "bytes": report.bytes_freed},
    )
    report.runs, report.component_rows = audit.counts["runs"], audit.counts["component_runs"]
    report.audit_id = audit.id
    logger.info(
        "deleted video %s: %d runs, %d files", report.subject_sha256, report.runs, report.files
    )
    return report


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
