"""The sample videos under ``examples/videos/`` (issue 13).

``scripts/make_sample_videos.py`` writes three small real videos (H.264 + AAC in MP4, VP9 + Opus
in WebM, H.264 without sound in MP4) and ``videos.json``, their identity and ground truth, for
the pipeline's end-to-end tests. These tests keep the committed files honest: regenerating them
gives the same bytes, each decodes with PyAV to what ``videos.json`` states, each stays small,
and the ground truth (words, speech, scene changes) is visible in the decoded pictures and sound.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from tests.conftest import EXAMPLES, REPO

VIDEOS = EXAMPLES / "videos"
SCRIPT = REPO / "scripts" / "make_sample_videos.py"
FILES = ("talk.mp4", "street.webm", "silent.mp4", "videos.json")
MAX_BYTES = 1_000_000


def _entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((VIDEOS / "videos.json").read_text("utf-8"))
    return entries


ENTRIES = _entries()
IDS = [entry["video_id"] for entry in ENTRIES]


def _frames(path: Path) -> list[NDArray[np.uint8]]:
    with av.open(str(path)) as container:
        return [
            np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
            for frame in container.decode(video=0)
        ]


def _sound(path: Path) -> tuple[NDArray[np.float64], int]:
    with av.open(str(path)) as container:
        chunks, rate = [], 0
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().astype(np.float64).mean(axis=0))
    return np.concatenate(chunks), rate


def test_the_committed_files_are_the_listed_ones() -> None:
    assert sorted(p.name for p in VIDEOS.iterdir()) == sorted(FILES)
    assert [entry["file"] for entry in ENTRIES] == list(FILES[:3])
    assert IDS == ["talk", "street", "silent"]
    assert {entry["platform_id"] for entry in ENTRIES} == {"local"}


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "videos"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (out / name).read_bytes() == (VIDEOS / name).read_bytes(), (
            f"{name} differs from the committed file: after an intended change (or a new PyAV/"
            "FFmpeg, numpy or Pillow) re-run scripts/make_sample_videos.py and commit the result"
        )


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_each_file_is_small(entry: dict[str, Any]) -> None:
    assert (VIDEOS / entry["file"]).stat().st_size < MAX_BYTES


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_each_file_decodes_to_what_videos_json_states(entry: dict[str, Any]) -> None:
    path = VIDEOS / entry["file"]
    fps, duration = entry["fps"], entry["duration_s"]
    one_frame = 1.0 / fps
    with av.open(str(path)) as container:
        assert entry["container"] in container.format.name.split(",")
        assert container.duration is not None
        assert abs(container.duration / av.time_base - duration) <= one_frame
        (video,) = container.streams.video
        assert video.codec_context.name == entry["video_codec"]
        assert video.average_rate == Fraction(fps)
        if entry["audio_codec"] is None:
            assert len(container.streams.audio) == 0
        else:
            (audio,) = container.streams.audio
            assert audio.codec_context.name == entry["audio_codec"]
            assert audio.codec_context.channels == 1
        times, sizes = [], set()
        for frame in container.decode(video=0):
            times.append(frame.time)
            sizes.add((frame.width, frame.height))
    assert sizes == {(entry["width"], entry["height"])}
    assert abs(len(times) - duration * fps) <= 1
    assert times[0] == 0.0
    assert abs(times[-1] + one_frame - duration) <= one_frame
    if entry["audio_codec"] is not None:
        samples, rate = _sound(path)
        assert abs(len(samples) / rate - duration) <= one_frame


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_the_ground_truth_is_in_the_pictures(entry: dict[str, Any]) -> None:
    """A word card (near-white pixels) exactly in the word spans; the cut is the biggest jump."""
    frames = _frames(VIDEOS / entry["file"])
    fps = entry["fps"]
    card_area = 0.1 * entry["width"] * entry["height"]
    for index, frame in enumerate(frames):
        t = index / fps
        expected = any(w["start_s"] <= t + 1e-9 < w["end_s"] for w in entry["words"])
        white = int((frame.min(axis=-1) > 220).sum())
        assert (white > card_area) == expected, (index, white)
    means = np.array([frame.reshape(-1, 3).mean(axis=0) for frame in frames])
    jumps = np.abs(np.diff(means, axis=0)).sum(axis=1)
    cuts = sorted(np.argsort(-jumps)[: len(entry["scene_changes_s"])] + 1)
    assert [round(c / fps, 6) for c in cuts] == entry["scene_changes_s"]


@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, id=e["video_id"]) for e in ENTRIES if e["audio_codec"] is not None],
)
def test_the_speech_is_where_videos_json_says(entry: dict[str, Any]) -> None:
    samples, rate = _sound(VIDEOS / entry["file"])
    t = np.arange(len(samples)) / rate
    inside = np.zeros(len(t), bool)
    for start, end in entry["speech"]:
        inside |= (t >= start) & (t < end)
    rms_in = float(np.sqrt(np.mean(samples[inside] ** 2)))
    rms_out = float(np.sqrt(np.mean(samples[~inside] ** 2)))
    assert rms_in > 20 * rms_out
