"""The sample fixture: loading it, its errors, and byte-identical regeneration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelmanager.errors import ConfigurationInvalid
from modelmanager.tools.media import SAMPLE_RATE, load_sample
from tests.conftest import EXAMPLES, REPO

SAMPLE = EXAMPLES / "sample"
FILES = ("sample.wav", "frames.npz", "sample.json")


def test_load_sample() -> None:
    sample = load_sample(SAMPLE)
    meta = sample.metadata
    assert sample.sample_rate == SAMPLE_RATE == meta["sample_rate"]
    assert sample.audio.dtype == np.float32
    assert sample.duration_s == pytest.approx(meta["duration_s"])
    assert float(np.max(np.abs(sample.audio))) <= 1.0
    assert sample.fps == meta["fps"] == 2
    n = round(meta["duration_s"] * sample.fps)
    assert sample.frames.shape == (n, *meta["frame_size"], 3)
    assert sample.frames.dtype == np.uint8
    assert len(meta["words_per_frame"]) == n
    assert meta["speech_intervals_s"] == [[1.0, 2.5], [3.5, 5.0]]


def test_speech_is_louder_than_the_gaps() -> None:
    sample = load_sample(SAMPLE)
    t = np.arange(len(sample.audio)) / sample.sample_rate
    inside = np.zeros(len(t), bool)
    for start, end in sample.metadata["speech_intervals_s"]:
        inside |= (t >= start) & (t < end)
    rms_in = float(np.sqrt(np.mean(sample.audio[inside] ** 2)))
    rms_out = float(np.sqrt(np.mean(sample.audio[~inside] ** 2)))
    assert rms_in > 30 * rms_out


def test_words_are_drawn_only_on_their_frames() -> None:
    sample = load_sample(SAMPLE)
    for frame, word in zip(sample.frames, sample.metadata["words_per_frame"], strict=True):
        # A word is black ink on a white card: pure black pixels exist only with a word.
        black = int(np.all(frame == 0, axis=-1).sum())
        assert (black > 100) == (word is not None), word


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    script = REPO / "scripts" / "make_sample_video.py"
    out = tmp_path / "sample"
    subprocess.run(
        [sys.executable, str(script), "--out", str(out)], check=True, capture_output=True
    )
    for name in FILES:
        assert (out / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    assert sum((SAMPLE / name).stat().st_size for name in FILES) < 1 << 20


def test_missing_directory_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalid, match=str(tmp_path / "nope")):
        load_sample(tmp_path / "nope")


@pytest.mark.parametrize("broken", FILES)
def test_broken_file_names_its_path(tmp_path: Path, broken: str) -> None:
    for name in FILES:
        (tmp_path / name).write_bytes((SAMPLE / name).read_bytes())
    (tmp_path / broken).write_bytes(b"not what it should be")
    with pytest.raises(ConfigurationInvalid, match=str(tmp_path / broken)):
        load_sample(tmp_path)


def test_missing_fps_is_refused(tmp_path: Path) -> None:
    for name in FILES:
        (tmp_path / name).write_bytes((SAMPLE / name).read_bytes())
    meta = json.loads((tmp_path / "sample.json").read_text())
    del meta["fps"]
    (tmp_path / "sample.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigurationInvalid, match="fps"):
        load_sample(tmp_path)
