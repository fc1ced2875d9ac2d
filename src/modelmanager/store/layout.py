"""Where things live under the artifact root (D5).

Layout under the artifact root (every id is a path-safe name, see
:class:`~modelmanager.mapping.spec.RunContext`)::

    <root>/
    └── <platform_id>/
        └── <video_id>/                         delete-by-video = this subtree (R-GC-4)
            ├── <component>/
            │   └── <run_id>/
            │       ├── <component>.npz         artifact_relpath(...)
            │       └── .<component>.npz.<16 hex>.tmp   a write in progress or a crashed one
            ├── runs/
            │   └── <run_id>/
            │       └── manifest.json           manifest_relpath(...), see modelmanager.store.manifest
            └── _tmp/
                └── <run_id>/
                    └── <name>/                 temp_relpath(...), temp_dir(...): frames_dir and
                                                other scratch data, expired by GC (R-GC-3)

``_tmp`` cannot be a component's name (a name starts with a letter or digit).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import Final

from modelmanager.errors import ArtifactPathUnsafe
from modelmanager.mapping.spec import NAME, RunContext
from modelmanager.store.atomic import make_dirs

__all__ = [
    "TEMP_DIR_NAME",
    "artifact_relpath",
    "check_relpath",
    "manifest_relpath",
    "resolve_relpath",
    "run_location",
    "temp_dir",
    "temp_relpath",
]

TEMP_DIR_NAME: Final = "_tmp"
"""The per-video directory of runs' temporary data (never a component name)."""


def check_relpath(value: str) -> str:
    path = PurePosixPath(value)
    if (
        not value
        or "\\" in value
        or path.is_absolute()
        or any(part in {"..", "."} for part in value.split("/"))
        or value.endswith("/")
    ):
        raise ValueError(f"{value!r} is not a normalized POSIX path relative to the artifact root")
    return value


def artifact_relpath(platform_id: str, video_id: str, component: str, run_id: str) -> str:
    """``<platform_id>/<video_id>/<component>/<run_id>/<component>.npz``.

    Args:
        platform_id, video_id, run_id: from the (validated) run context.
        component: the component's name, as in the mapping.
    """
    return f"{platform_id}/{video_id}/{component}/{run_id}/{component}.npz"


def manifest_relpath(platform_id: str, video_id: str, run_id: str) -> str:
    """``<platform_id>/<video_id>/runs/<run_id>/manifest.json``.

    A component named ``runs`` would share this directory level, but its files
    are ``runs/<run_id>/runs.npz``, so no name clashes with ``manifest.json``.

    Args:
        platform_id, video_id, run_id: from the (validated) run context.
    """
    return f"{platform_id}/{video_id}/runs/{run_id}/manifest.json"


def run_location(relpath: str) -> tuple[str, str, str, str] | None:
    """``(platform_id, video_id, area, run_id)`` of a file inside a run's directory, else None.

    The inverse of :func:`artifact_relpath`, :func:`manifest_relpath` and
    :func:`temp_relpath`: ``area`` is the component's name, ``runs`` or
    :data:`TEMP_DIR_NAME`. A file less deep than ``<p>/<v>/<area>/<run_id>/<name>``
    is in no run's directory (None). The parts are not validated.

    >>> run_location("youtube/v1/runs/r1/manifest.json")
    ('youtube', 'v1', 'runs', 'r1')
    >>> run_location("youtube/v1/stray.txt") is None
    True
    """
    parts = relpath.split("/")
    if len(parts) < 5:
        return None
    return parts[0], parts[1], parts[2], parts[3]


def temp_relpath(platform_id: str, video_id: str, run_id: str, name: str) -> str:
    """``<platform_id>/<video_id>/_tmp/<run_id>/<name>``: a run's temporary data (R-GC-3).

    Garbage collection removes ``_tmp/<run_id>/`` once the run started more than
    ``gc_temp_ttl_days`` ago (and with the run, or the video, when they go).

    Raises:
        ValueError: ``name`` is not a path-safe name.
    """
    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid temp directory name (letters, digits, _ . -)")
    return f"{platform_id}/{video_id}/{TEMP_DIR_NAME}/{run_id}/{name}"


def temp_dir(root: str | os.PathLike[str], run_context: RunContext, name: str) -> Path:
    """A run's temporary directory ``name`` under the artifact root, created if missing.

    >>> frames = temp_dir(artifact_root, run_context, "frames_dir")  # doctest: +SKIP

    Raises:
        ValueError: ``name`` is not a path-safe name.
    """
    path = resolve_relpath(
        root, temp_relpath(run_context.platform_id, run_context.video_id, run_context.run_id, name)
    )
    make_dirs(path)
    return path


def resolve_relpath(root: str | os.PathLike[str], relpath: str) -> Path:
    """``root/relpath`` for a normalized relative POSIX ``relpath`` that stays inside ``root``:
    no part of it below the root is a symbolic link (the root itself may be one).

    Raises:
        ValueError: ``relpath`` is empty, absolute, has ``..``/``.`` parts or backslashes.
        ArtifactPathUnsafe: a folder or file on the way is a symbolic link.
    """
    parts = check_relpath(relpath).split("/")
    path = Path(root)
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # missing (to be created), or unreadable: the caller's open says which
            return path.joinpath(*parts[i + 1 :])
        if stat.S_ISLNK(mode):
            raise ArtifactPathUnsafe(
                f"{path} is a symbolic link inside the artifact root; nothing is read, "
                "written or deleted through it",
                path=str(path),
            )
    return path
