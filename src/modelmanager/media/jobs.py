"""Which videos a run is over, and under which ids: never derived from a file's name.

One video takes its ids from the command's flags (``--platform-id``, ``--video-id``);
many take them from a video list (``--videos FILE``), a YAML or JSON list of objects::

    [{"file": "talk.mp4", "platform_id": "local", "video_id": "talk"}, ...]

``file`` is relative to the list's own folder; ``platform_id`` defaults to ``local``;
``components`` (optional) runs only those of the run's components on that video (a video
without audio: the components that read frames); other keys (ground truth, notes) are
ignored. Ids become folders under the artifact
root, so they are safe names (letters, digits, ``_ . -``; no separator, no ``..``;
at most 128 characters); a pair given twice is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmanager.errors import ConfigurationInvalid
from modelmanager.mapping.sources import load_data
from modelmanager.mapping.spec import NAME

__all__ = ["DEFAULT_PLATFORM", "VideoJob", "video_jobs"]

DEFAULT_PLATFORM = "local"
_USAGE = (
    "One video: `modelmanager run PROFILE VIDEO --video-id ID [--platform-id P]`; many: "
    "`modelmanager run PROFILE --videos LIST` (examples/videos/videos.json is one)."
)


@dataclass(frozen=True, slots=True)
class VideoJob:
    """One video to run: its file and the ids its results are stored under."""

    path: Path
    platform_id: str
    video_id: str
    components: tuple[str, ...] | None = None
    """Only these of the run's components (None: all of them)."""


def video_jobs(
    videos: Sequence[Path],
    *,
    platform_id: str = DEFAULT_PLATFORM,
    video_id: str | None = None,
    video_list: Path | None = None,
) -> list[VideoJob]:
    """The videos of a run, checked: ids safe and distinct, every file there.

    Raises:
        ConfigurationInvalid: no video, several videos without a list, a video without
            ``video_id``, an unsafe or repeated id, a missing file (bad input, exit 2).
        ProfileLoadFailed: the list cannot be read.
    """
    if video_list is not None:
        if videos or video_id is not None:
            raise ConfigurationInvalid(
                "give the videos either as arguments (one, with --video-id) or in --videos, "
                "not both",
                param="videos",
                hint=_USAGE,
            )
        jobs = _listed(video_list)
    elif not videos:
        raise ConfigurationInvalid(
            "no video to run: give one video file with --video-id, or --videos FILE",
            param="videos",
            hint=_USAGE,
        )
    elif len(videos) > 1:
        raise ConfigurationInvalid(
            f"{len(videos)} videos need a video list for their ids (--videos FILE: a list of "
            '{"file", "platform_id", "video_id"}); ids are never taken from file names',
            param="videos",
            hint=_USAGE,
        )
    elif video_id is None:
        raise ConfigurationInvalid(
            f"{videos[0]}: --video-id is needed (ids are never taken from file names)",
            param="video_id",
            hint=_USAGE,
        )
    else:
        jobs = [VideoJob(Path(videos[0]), platform_id, video_id)]
    seen: set[tuple[str, str]] = set()
    for job in jobs:
        for field in ("platform_id", "video_id"):
            _check_id(field, getattr(job, field), job.path)
        pair = (job.platform_id, job.video_id)
        if pair in seen:
            raise ConfigurationInvalid(
                f"{job.platform_id}/{job.video_id} is given twice; each video needs its own ids",
                platform_id=job.platform_id,
                video_id=job.video_id,
                hint="Give each video its own video_id in the list.",
            )
        seen.add(pair)
    missing = [str(job.path) for job in jobs if not job.path.is_file()]
    if missing:
        raise ConfigurationInvalid(f"no such video file: {', '.join(missing)}", path=missing)
    return jobs


def _listed(video_list: Path) -> list[VideoJob]:
    data = load_data(video_list)
    if not isinstance(data, list) or not data:
        raise ConfigurationInvalid(
            f"{video_list}: a video list is a non-empty list of "
            '{"file", "platform_id", "video_id"} objects',
            path=[str(video_list)],
        )
    return [_job(video_list, i, item) for i, item in enumerate(data)]


def _job(video_list: Path, index: int, item: Any) -> VideoJob:
    where = f"{video_list}: item {index}"
    if not isinstance(item, Mapping):
        raise ConfigurationInvalid(f"{where} is not an object", path=[str(video_list)])
    for field in ("file", "video_id"):
        if not isinstance(item.get(field), str):
            raise ConfigurationInvalid(
                f"{where} has no {field!r} string", path=[str(video_list)], field=field
            )
    platform = item.get("platform_id", DEFAULT_PLATFORM)
    if not isinstance(platform, str):
        raise ConfigurationInvalid(
            f"{where}: platform_id is not a string", path=[str(video_list)], field="platform_id"
        )
    components = item.get("components")
    if components is not None and (
        not isinstance(components, list)
        or not components
        or not all(isinstance(c, str) for c in components)
    ):
        raise ConfigurationInvalid(
            f"{where}: components is a non-empty list of component names",
            path=[str(video_list)],
            field="components",
        )
    return VideoJob(
        video_list.parent / item["file"],
        platform,
        item["video_id"],
        None if components is None else tuple(components),
    )


def _check_id(field: str, value: str, path: Path) -> None:
    if NAME.fullmatch(value) is None:
        raise ConfigurationInvalid(
            f"{path}: {field} {value!r} is not a safe name (letters, digits, '_', '.', '-'; "
            "starting with a letter or digit; at most 128 characters): it becomes a folder",
            field=field,
            value=value,
            hint=f"Choose a {field} of letters, digits, '_', '.' and '-'.",
        )
