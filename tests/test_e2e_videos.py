"""End to end on real videos (issue 13; seed §14: "e2e with real models on 2–3 small videos").

``modelmanager run --videos examples/videos/videos.json`` with the real models: H.264+AAC
MP4, VP9+Opus WebM at another frame rate and size, and an MP4 without audio (its list
entry runs only the components that read frames). What each component found is checked
against the videos' ground truth (``videos.json``, written with them by
``scripts/make_sample_videos.py``); the second run serves everything from the cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from modelmanager.tools.prepare import write_profile

from .conftest import TRUTH, VIDEOS

VAD_TOLERANCE_S = 0.25
"""VAD works in 32 ms windows and smooths its edges; the Opus/AAC round trip adds a little."""

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(
    real_models: tuple[Path, list[Any]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """The first and the second run over the three videos, and the artifact root."""
    root, models = real_models
    base = tmp_path_factory.mktemp("e2e-videos")
    profile = base / "profile.yaml"
    write_profile(models, profile)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELMANAGER_DATA_DIR", str(base / "data"))
        args = ["run", str(profile), "--videos", str(VIDEOS / "videos.json")]
        args += ["--models-root", str(root), "--json"]
        first, second = (runner.invoke(app, args) for _ in range(2))
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    return json.loads(first.stdout), json.loads(second.stdout), base / "data" / "artifacts"


def _arrays(artifacts: Path, run: dict[str, Any], component: str) -> Any:
    (entry,) = [c for c in run["manifest"]["components"] if c["component"] == component]
    return np.load(artifacts / entry["artifact"]["relpath"], allow_pickle=False)


def test_every_video_ran_and_the_second_run_is_all_cached(runs: Any) -> None:
    first, second, _ = runs
    assert [r["video_id"] for r in first["runs"]] == ["talk", "street", "silent"]
    for run in first["runs"]:
        assert {c["status"] for c in run["manifest"]["components"]} == {"ok"}, run["video_id"]
    for run in second["runs"]:
        assert {c["status"] for c in run["manifest"]["components"]} == {"cached"}
    silent = first["runs"][2]["manifest"]["components"]
    assert [c["component"] for c in silent] == ["text_ocr", "frame_safety"]


@pytest.mark.parametrize("video", ["talk", "street"])
def test_vad_finds_the_speech_of_each_video(runs: Any, video: str) -> None:
    first, _, artifacts = runs
    run = next(r for r in first["runs"] if r["video_id"] == video)
    segments = _arrays(artifacts, run, "audio_vad")["segments"]
    expected = np.asarray(TRUTH[video]["speech"])
    assert segments.shape == expected.shape
    np.testing.assert_allclose(segments, expected, atol=VAD_TOLERANCE_S)


@pytest.mark.parametrize("video", ["talk", "street", "silent"])
def test_ocr_reads_each_word_on_the_sampled_frames_that_show_it(runs: Any, video: str) -> None:
    """The default policy samples one frame a second; each sampled frame inside a word's
    span reads that word, and no other frame reads anything."""
    first, _, artifacts = runs
    run = next(r for r in first["runs"] if r["video_id"] == video)
    found = _arrays(artifacts, run, "text_ocr")
    expected = {
        second: word["word"]
        for word in TRUTH[video]["words"]
        for second in range(int(TRUTH[video]["duration_s"]) + 1)
        if word["start_s"] <= second < word["end_s"]
    }
    read = dict(zip(found["frame_index"].tolist(), found["text"].tolist(), strict=True))
    assert read == expected


@pytest.mark.parametrize("video", ["talk", "street", "silent"])
def test_frame_safety_scores_every_sampled_frame(runs: Any, video: str) -> None:
    first, _, artifacts = runs
    run = next(r for r in first["runs"] if r["video_id"] == video)
    found = _arrays(artifacts, run, "frame_safety")
    frames = int(np.ceil(TRUTH[video]["duration_s"]))  # 1 frame/s from t=0
    assert found["nsfw_score"].shape == (frames,)
    assert found["features"].shape[0] == frames
    assert np.all((found["nsfw_score"] >= 0) & (found["nsfw_score"] <= 0.5))  # nothing to flag
