"""Tiny videos written with PyAV for the decoder's tests (issue 13)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_video(
    path: Path,
    *,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (64, 48),
    audio_rate: int | None = 44_100,
    codec: str = "libx264",
) -> Path:
    """A video whose frame i is filled with grey level (i * 7) % 256, with a 440 Hz tone."""
    import av

    width, height = size
    with av.open(str(path), mode="w") as container:
        video = container.add_stream(codec, rate=fps)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio: av.AudioStream | None = None
        if audio_rate is not None:
            audio_codec = "libopus" if path.suffix == ".webm" else "aac"
            stream = container.add_stream(audio_codec, rate=audio_rate, layout="mono")
            assert isinstance(stream, av.AudioStream)
            audio = stream
        for i in range(round(seconds * fps)):
            pixels = np.full((height, width, 3), (i * 7) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            assert audio_rate is not None
            t = np.arange(round(seconds * audio_rate)) / audio_rate
            tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            block = 960  # Opus takes 20 ms frames at 48 kHz; AAC any size
            for start in range(0, len(tone), block):
                chunk = tone[start : start + block].reshape(1, -1)
                sound = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                sound.sample_rate, sound.pts = audio_rate, start
                sound.time_base = Fraction(1, audio_rate)
                container.mux(audio.encode(sound))
            container.mux(audio.encode(None))
    return path
