"""Loading a sample "video": its frames, its audio track and its ground truth.

A sample directory (see ``scripts/make_sample_video.py``) holds::

    sample.json   metadata: fps, sample_rate, speech intervals, words per frame
    sample.wav    the audio track, mono 16-bit PCM at 16 kHz
    frames.npz    ``frames``: uint8 [N, H, W, 3]

Only numpy and the standard library's ``wave`` are used: no ffmpeg. A missing
or broken file raises :class:`~modelmanager.errors.ConfigurationInvalid`
naming its path.
"""

from __future__ import annotations

import json
import os
import wave
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelmanager.errors import ConfigurationInvalid

__all__ = ["SAMPLE_RATE", "Sample", "load_sample", "read_wav"]

SAMPLE_RATE = 16_000
"""The rate every audio model here expects (Hz)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """A loaded sample: frames, audio as float32 in [-1, 1] at 16 kHz, and its metadata."""

    path: Path
    frames: NDArray[np.uint8]
    audio: NDArray[np.float32]
    sample_rate: int
    fps: float
    metadata: Mapping[str, Any]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def read_wav(path: str | os.PathLike[str]) -> tuple[NDArray[np.float32], int]:
    """Read a mono 16-bit PCM WAV file as float32 samples in [-1, 1] and its rate."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ConfigurationInvalid(f"cannot read audio {path}: {exc}") from exc
    if channels != 1 or width != 2:
        raise ConfigurationInvalid(
            f"audio {path}: expected mono 16-bit PCM, got {channels} channel(s) of {8 * width} bits"
        )
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    return samples, rate


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationInvalid(f"cannot read sample metadata {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigurationInvalid(f"sample metadata {path}: expected a JSON object")
    return document


def _read_frames(path: Path) -> NDArray[np.uint8]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            frames = archive["frames"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigurationInvalid(f"cannot read frames {path}: {exc}") from exc
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigurationInvalid(
            f"frames {path}: expected uint8 [N, H, W, 3], got {frames.dtype} {list(frames.shape)}"
        )
    return np.asarray(frames, dtype=np.uint8)


def load_sample(directory: str | os.PathLike[str]) -> Sample:
    """Load ``sample.json``, ``sample.wav`` and ``frames.npz`` from ``directory``."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigurationInvalid(f"sample directory {root} does not exist")
    metadata = _read_metadata(root / "sample.json")
    audio, rate = read_wav(root / "sample.wav")
    if rate != SAMPLE_RATE:
        raise ConfigurationInvalid(
            f"audio {root / 'sample.wav'}: expected {SAMPLE_RATE} Hz, got {rate} Hz"
        )
    frames = _read_frames(root / "frames.npz")
    try:
        fps = float(metadata["fps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationInvalid(f"sample metadata {root / 'sample.json'}: no valid fps") from exc
    if fps <= 0:
        raise ConfigurationInvalid(f"sample metadata {root / 'sample.json'}: fps must be > 0")
    return Sample(
        path=root, frames=frames, audio=audio, sample_rate=rate, fps=fps, metadata=metadata
    )
