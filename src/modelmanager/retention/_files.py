"""Deleting files under the artifact root: what garbage collection, the orphan fix and
delete-by-video share (private to :mod:`modelmanager.retention`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from modelmanager.errors import ArtifactRootMissing
from modelmanager.store.layout import resolve_relpath

__all__ = [
    "Deletion",
    "FileProgress",
    "aware_now",
    "check_root",
    "file_exists",
    "remove_empty_up_to",
    "video_dir",
]

FileProgress = Callable[[int, int], None]
"""``progress(done, total)`` after each file deleted."""


@dataclass(slots=True)
class Deletion:
    """Files and directories to delete under the artifact root, with their sizes."""

    root: Path
    files: dict[Path, int] = field(default_factory=dict)
    dirs: set[Path] = field(default_factory=set)
    """Directories to remove once empty (deepest first), with their empty parents."""
    removed: int = 0
    """Files :meth:`apply` really removed (one already gone is not counted)."""
    removed_bytes: int = 0
    """Their sizes."""

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

    def apply(self, progress: FileProgress | None, done: int = 0, total: int | None = None) -> int:
        """Delete the files, then the emptied directories up to the root; returns files deleted."""
        total = len(self.files) if total is None else total
        for path, size in self.files.items():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                self.removed += 1
                self.removed_bytes += size
            done += 1
            if progress is not None:
                progress(done, total)
        for directory in sorted(self.dirs, key=lambda p: len(p.parts), reverse=True):
            remove_empty_up_to(directory, self.root)
        return done


def remove_empty_up_to(directory: Path, root: Path) -> None:
    """Remove ``directory`` and its parents below ``root`` while they are empty."""
    current = directory
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty
            return
        current = current.parent


def video_dir(root: Path, platform_id: str, video_id: str) -> Path:
    """``<root>/<platform_id>/<video_id>``: everything of one video (see :mod:`modelmanager.store.layout`)."""
    return resolve_relpath(root, f"{platform_id}/{video_id}")


def file_exists(root: Path, relpath: str) -> bool:
    """Whether ``relpath`` names a file under ``root`` (False for a path outside it)."""
    try:
        return resolve_relpath(root, relpath).is_file()
    except ValueError:
        return False


def check_root(root: Path, has_runs: bool) -> None:
    """Raise ArtifactRootMissing if ``root`` is a file, or missing while the index has runs."""
    if root.exists() and not root.is_dir():
        raise ArtifactRootMissing(f"the artifact root {root} is not a directory", path=str(root))
    if has_runs and not root.is_dir():
        raise ArtifactRootMissing(
            f"the artifact root {root} does not exist, but the run index has runs",
            path=str(root),
        )


def aware_now(now: datetime | None) -> datetime:
    """``now`` in UTC, or the current time; a naive ``now`` is a ValueError."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    return now.astimezone(UTC)
