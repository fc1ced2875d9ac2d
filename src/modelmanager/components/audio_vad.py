"""Voice activity detection over an audio track with the silero VAD ONNX model.

The model is stateful (an LSTM): windows of 512 samples at 16 kHz are fed one
after the other with batch 1, each call carrying the ``state`` the previous one
returned. Like silero's own wrapper, each window is preceded by the last 64
samples of the previous one (its *context*): the model's input is [1, 576].
Without that context the v5/v6 models detect nothing.

Precision is a property of the mapped model file: the fp16 variant
(``silero_vad_half.onnx``) has half-precision weights behind the same float32
I/O, except that it takes no ``sr`` input; the component asks the opened handle
for its input names and feeds ``sr`` only where the model has one.

Output arrays:

* ``speech_prob``    float32 [T]: the model's speech probability per window;
* ``window_start_s`` float32 [T]: where each window starts, in seconds;
* ``segments``       float32 [K, 2]: (start, end) seconds of detected speech —
  speech starts at a window with probability ≥ ``THRESHOLD`` and ends once
  ``HANGOVER_WINDOWS`` windows in a row fall below ``THRESHOLD - 0.15``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelmanager.errors import ConfigurationInvalid, InputMissing
from modelmanager.run.contract import ComponentOutput, ComponentRequest

__all__ = ["AudioVAD", "speech_segments"]

SAMPLE_RATE = 16_000
WINDOW = 512
CONTEXT = 64
THRESHOLD = 0.5
NEG_THRESHOLD = THRESHOLD - 0.15
HANGOVER_WINDOWS = 3
MIN_SPEECH_WINDOWS = 2


def speech_segments(
    probs: NDArray[np.float32],
    *,
    window_s: float = WINDOW / SAMPLE_RATE,
    threshold: float = THRESHOLD,
    neg_threshold: float = NEG_THRESHOLD,
    hangover: int = HANGOVER_WINDOWS,
    min_windows: int = MIN_SPEECH_WINDOWS,
) -> NDArray[np.float32]:
    """Turn per-window probabilities into [K, 2] (start, end) seconds of speech."""
    segments: list[tuple[float, float]] = []
    start: int | None = None
    last_speech = -1
    quiet = 0
    for i, p in enumerate(probs.tolist()):
        if start is None:
            if p >= threshold:
                start, last_speech, quiet = i, i, 0
            continue
        if p < neg_threshold:
            quiet += 1
            if quiet >= hangover:
                if last_speech - start + 1 >= min_windows:
                    segments.append((start * window_s, (last_speech + 1) * window_s))
                start = None
        else:
            quiet = 0
            if p >= threshold:
                last_speech = i
    if start is not None and last_speech - start + 1 >= min_windows:
        segments.append((start * window_s, (last_speech + 1) * window_s))
    return np.asarray(segments, dtype=np.float32).reshape(-1, 2)


class AudioVAD:
    """Speech probability per 32 ms window, and speech segments, for ``inputs["audio"]``.

    Inputs: ``audio``, float32 samples in [-1, 1]: an array, or a streamed track (an
    object whose ``chunks()`` yields arrays, as ``modelmanager.media.AudioTrack``: one
    chunk in memory at a time, however long the video); and optionally ``sample_rate``
    (must be 16000).
    """

    name = "audio_vad"
    producer_version = "1.0.0"
    schema_version = "1"
    roles: Sequence[str] = ("vad",)
    max_batch = 1
    """One window at a time: the LSTM state runs through the track."""

    def process(self, request: ComponentRequest) -> ComponentOutput:
        rate = int(request.inputs.get("sample_rate", SAMPLE_RATE))
        if rate != SAMPLE_RATE:
            raise ConfigurationInvalid(f"audio_vad needs {SAMPLE_RATE} Hz audio, got {rate} Hz")
        if request.inputs.get("audio") is None:
            raise InputMissing(
                "audio_vad reads the audio track, and this input has none",
                component=self.name,
                input="audio",
            )
        handle = request.runtimes["vad"]
        input_names = {t.name for t in handle.metadata().inputs}
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros((1, CONTEXT), np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        probs: list[float] = []
        for window in _windows(request.inputs["audio"]):
            feed: dict[str, Any] = {"input": np.concatenate([context, window], axis=1)}
            feed["state"] = state
            if "sr" in input_names:
                feed["sr"] = sr
            out = handle(feed)
            probs.append(float(np.asarray(out["output"]).reshape(-1)[0]))
            state = np.asarray(out["stateN"], dtype=np.float32)
            context = window[:, -CONTEXT:]
        count = len(probs)
        starts = (np.arange(count, dtype=np.float64) * WINDOW / SAMPLE_RATE).astype(np.float32)
        prob = np.asarray(probs, np.float32)
        return ComponentOutput(
            {"speech_prob": prob, "window_start_s": starts, "segments": speech_segments(prob)},
            batch_size=1,
            seed=0,
        )


def _windows(audio: Any) -> Iterator[NDArray[np.float32]]:
    """``audio``'s samples as [1, WINDOW] windows, in order; the last, partial window is
    padded with zeros. ``audio`` is an array or a track with ``chunks()``."""
    chunks = audio.chunks() if hasattr(audio, "chunks") else [audio]
    rest = np.zeros(0, np.float32)
    for chunk in chunks:
        data = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if len(rest):
            data = np.concatenate([rest, data])
        whole = len(data) - len(data) % WINDOW
        for start in range(0, whole, WINDOW):
            yield data[start : start + WINDOW].reshape(1, WINDOW)
        rest = data[whole:]
    if len(rest):
        last = np.zeros((1, WINDOW), np.float32)
        last[0, : len(rest)] = rest
        yield last
