"""Write the small deterministic sample "video" under ``examples/sample/``.

No camera, microphone or ffmpeg is involved: everything is synthesised with
numpy, Pillow (text) and the standard library, from fixed seeds, so that re-running the
script rewrites byte-identical files:

* ``sample.wav``  — the audio track, 16 kHz mono 16-bit PCM. Speech-like
  sound (a glottal pulse train with a moving pitch, shaped by three moving
  formant resonators, amplitude-modulated at a syllable rate of ~4 Hz) lies in
  the intervals listed in ``sample.json``; elsewhere there is faint noise.
* ``frames.npz``  — ``frames``: uint8 [N, H, W, 3] at ``FPS`` frames per
  second; some frames carry a word in black on a white card, drawn
  (antialiased) with the scalable font built into Pillow, so the bytes depend
  on the pinned Pillow version. The archive is written with fixed zip timestamps.
* ``sample.json`` — the ground truth: speech intervals in seconds and the word
  on each frame (``null`` for none).

Usage::

    python scripts/make_sample_video.py [--out examples/sample]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import wave
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

SAMPLE_RATE = 16_000
DURATION_S = 6.0
FPS = 2
WIDTH, HEIGHT = 160, 96
SPEECH_INTERVALS: tuple[tuple[float, float], ...] = ((1.0, 2.5), (3.5, 5.0))
WORDS: tuple[str | None, ...] = (
    None,
    None,
    "MODEL",
    "MODEL",
    "MODEL",
    None,
    None,
    "CACHE",
    "CACHE",
    "CACHE",
    None,
    None,
)
SEED = 20240601
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "examples" / "sample"

FONT_SIZE = 30
"""Pixel size of Pillow's built-in scalable font (Aileron Regular, Pillow >= 10.1)."""

# Vowel-like formant targets (F1, F2, F3 in Hz), cycled syllable by syllable.
VOWELS: tuple[tuple[float, float, float], ...] = (
    (730.0, 1090.0, 2440.0),  # a
    (270.0, 2290.0, 3010.0),  # i
    (530.0, 1840.0, 2480.0),  # e
    (570.0, 840.0, 2410.0),  # o
    (300.0, 870.0, 2240.0),  # u
)


def _resonate(x: NDArray[np.float64], freqs: NDArray[np.float64], bw: float) -> NDArray[np.float64]:
    """A two-pole resonator whose centre frequency follows ``freqs`` sample by sample."""
    r = math.exp(-math.pi * bw / SAMPLE_RATE)
    a1 = 2.0 * r * np.cos(2.0 * np.pi * freqs / SAMPLE_RATE)
    a2 = -r * r
    gain = 1.0 - r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for n in range(len(x)):
        v = gain * float(x[n]) + float(a1[n]) * y1 + a2 * y2
        y[n] = v
        y2, y1 = y1, v
    return y


def _speech(duration_s: float, rng: np.random.Generator, first_vowel: int) -> NDArray[np.float64]:
    """Voiced, syllabic sound of ``duration_s`` seconds, peak-normalised to 1."""
    n = round(duration_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    # Pitch: a slow declination plus intonation wobble, 100-190 Hz.
    f0 = 150.0 - 20.0 * t / duration_s + 30.0 * np.sin(2.0 * np.pi * 0.9 * t + rng.uniform(0, 6))
    f0 *= 1.0 + 0.01 * rng.standard_normal(n).cumsum() / math.sqrt(n)
    phase = np.cumsum(f0) / SAMPLE_RATE
    # Glottal source: a Rosenberg-like pulse per period (sharp closure → rich harmonics).
    frac = phase - np.floor(phase)
    open_q = 0.6
    pulse = np.where(
        frac < open_q,
        0.5 * (1.0 - np.cos(np.pi * frac / open_q)),
        np.cos(0.5 * np.pi * (frac - open_q) / (1.0 - open_q)),
    )
    source = np.diff(pulse, prepend=pulse[0]) * SAMPLE_RATE / 200.0
    source += 0.02 * rng.standard_normal(n)  # aspiration
    # Syllables of ~250 ms: formants glide from one vowel target to the next.
    syllable_s = 0.25
    pos = t / syllable_s
    index = np.floor(pos).astype(np.int64)
    glide = np.clip((pos - index) / 0.4, 0.0, 1.0)
    formants = np.array(VOWELS)
    k = len(VOWELS)
    cur = formants[(index + first_vowel) % k]
    nxt = formants[(index + first_vowel + 1) % k]
    track = cur + (nxt - cur) * glide[:, None]
    voiced = np.zeros(n)
    for j, bw in enumerate((80.0, 100.0, 140.0)):
        voiced += _resonate(source, track[:, j], bw) * (1.0, 0.6, 0.3)[j]
    # Syllable envelope: a raised cosine per syllable with a short dip between them.
    within = pos - index
    envelope = np.sin(np.pi * np.clip(within / 0.85, 0.0, 1.0)) ** 0.6
    envelope *= np.clip(np.minimum(t, duration_s - t) / 0.03, 0.0, 1.0)  # no clicks at the ends
    speech = voiced * envelope
    normalised: NDArray[np.float64] = speech / float(np.max(np.abs(speech)))
    return normalised


def make_audio(rng: np.random.Generator) -> NDArray[np.int16]:
    """The whole track as int16 samples."""
    n = round(DURATION_S * SAMPLE_RATE)
    audio = 0.002 * rng.standard_normal(n)  # faint background noise (about -54 dBFS)
    for i, (start, end) in enumerate(SPEECH_INTERVALS):
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        audio[a:b] += 0.5 * _speech(end - start, rng, first_vowel=2 * i)
    samples: NDArray[np.int16] = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    return samples


def _draw_word(frame: NDArray[np.uint8], word: str) -> None:
    """Draw ``word`` centred in black, antialiased, on a white card, as a caption would be."""
    font = ImageFont.load_default(size=FONT_SIZE)
    left, top, right, bottom = font.getbbox(word)
    pad = 8
    card = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 255)
    ImageDraw.Draw(card).text((pad - left, pad - top), word, font=font, fill=0)
    ink = np.asarray(card, dtype=np.uint8)
    h, w = ink.shape
    y0, x0 = (HEIGHT - h) // 2, (WIDTH - w) // 2
    frame[y0 : y0 + h, x0 : x0 + w] = ink[:, :, None]


def make_frames(rng: np.random.Generator) -> NDArray[np.uint8]:
    """[N, H, W, 3] uint8 frames: a coloured gradient, a moving square, and words."""
    count = round(DURATION_S * FPS)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.zeros((count, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(count):
        frame = frames[i]
        frame[..., 0] = (xs * 255 // (WIDTH - 1)).astype(np.uint8)
        frame[..., 1] = (ys * 255 // (HEIGHT - 1)).astype(np.uint8)
        frame[..., 2] = np.uint8((i * 20) % 256)
        x = int(rng.integers(0, WIDTH - 16))
        frame[4:20, x : x + 16] = (255, 255, 0)
        word = WORDS[i]
        if word is not None:
            _draw_word(frame, word)
    return frames


def write_wav(path: Path, samples: NDArray[np.int16]) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def write_npz(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """Like ``np.savez_compressed``, but with fixed zip timestamps (byte-identical reruns)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(  # type: ignore[no-untyped-call]
                buffer, np.ascontiguousarray(array), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def build(out: Path) -> list[Path]:
    """Write the three sample files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    audio_rng, frame_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(SEED).spawn(2))
    audio = make_audio(audio_rng)
    frames = make_frames(frame_rng)
    wav, npz, meta = out / "sample.wav", out / "frames.npz", out / "sample.json"
    write_wav(wav, audio)
    write_npz(npz, {"frames": frames})
    document = {
        "format_version": 1,
        "generator": "scripts/make_sample_video.py",
        "seed": SEED,
        "duration_s": DURATION_S,
        "sample_rate": SAMPLE_RATE,
        "fps": FPS,
        "frame_size": [HEIGHT, WIDTH],
        "speech_intervals_s": [list(iv) for iv in SPEECH_INTERVALS],
        "words_per_frame": list(WORDS),
    }
    meta.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [wav, npz, meta]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
