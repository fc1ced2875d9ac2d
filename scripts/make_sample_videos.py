"""Write three small deterministic sample videos with known ground truth under ``examples/videos/``.

They are real, compressed video files for end-to-end tests of the video-analytics pipeline
(decode → ``audio_vad`` / ``text_ocr`` / ``frame_safety``). Nothing is recorded: the pictures
and the sound are synthesised from fixed seeds with numpy and Pillow (the speech-like voice and
the word cards of the WAV+NPZ sample these videos replaced, kept bit for bit), and encoded with
PyAV's bundled FFmpeg:

* ``talk.mp4``   — H.264 (libx264, yuv420p) + AAC mono 16 kHz; 160x96 at 25 fps, 6 s.
* ``street.webm`` — VP9 (libvpx-vp9, yuv420p) + Opus mono 48 kHz; 192x112 at 15 fps, 5 s.
* ``silent.mp4`` — H.264 with no audio stream; 160x96 at 30 fps, 4 s.
* ``videos.json`` — identity and ground truth, one object per video: container and codecs,
  frame rate, size and duration, the speech intervals, the word shown in each time span and
  the times of the hard scene changes, all in seconds.

The pictures: each video has two scenes. The first is a ramp scene (red/green colour ramps, a
slowly swelling blue, a yellow square moving to and fro); at the scene change it switches hard
to a dark blue-green pattern of slowly drifting waves with a red square. In the word spans, a
word (MODEL or CACHE) is drawn in black on a white card centred in the frame with Pillow's
built-in scalable font, the card scaled with the frame height (font size 30 on a 96-pixel-high
frame). A frame at time ``i / fps`` shows a word iff ``start_s <= i / fps < end_s``; a scene
change at ``t`` means frame ``t * fps`` is the first of the new scene. Every span boundary falls
on a frame boundary.

The sound: a speech-like voice (glottal pulses through moving formants, ~4 syllables a second)
in the speech intervals, faint noise (about -54 dBFS) elsewhere, synthesised at 16 kHz; for
Opus, which only runs at 48 kHz, it is upsampled 3x here with a windowed-sinc filter.

Determinism: fixed seeds; RGB → YUV 4:2:0 (BT.601, limited range) is done here in integer
numpy rather than by swscale; the muxers run with ``fflags=+bitexact`` (no muxer version, no
creation time, no random WebM segment UID); the codec contexts carry the BITEXACT flag and
one thread (x264 ``threads=1``, libvpx ``threads=1`` and ``row-mt=0``): x264's output depends
on its thread count, which by default follows the machine's cores. x264 also runs without its
assembly (``asm=0``): with it, one encode in 4 to 10 of the same frames in one process came out
different (apparently a read of uninitialised memory), and its plain C is CPU-independent.
Re-running the script with the same pinned PyAV/FFmpeg, numpy and Pillow on the same machine
rewrites byte-identical files (``tests/tools/test_sample_videos.py`` checks that); another CPU
may round some floating-point synthesis or the AAC/Opus encoders differently.

Usage::

    python scripts/make_sample_videos.py [--out examples/videos]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import numpy as np
from av.codec.context import Flags
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

_SCRIPTS = Path(__file__).resolve().parent

SPEECH_RATE = 16_000
"""The rate the voice is synthesised at (16 kHz, what ``audio_vad`` consumes)."""
CARD_FONT_SIZE = 30
CARD_FRAME_HEIGHT = 96
"""The word card: Pillow's built-in scalable font (Aileron Regular, Pillow >= 10.1) at 30 px
on a frame 96 px high, scaled with the frame height."""

DEFAULT_OUT = _SCRIPTS.parent / "examples" / "videos"
SEED = 20240613
OPUS_RATE = 48_000
CONTAINER_OPTIONS = {"fflags": "+bitexact"}


@dataclass(frozen=True)
class Word:
    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class VideoSpec:
    """One sample video: how it is encoded and what is in it."""

    video_id: str
    file: str
    container: str  # FFmpeg muxer name
    video_encoder: str
    video_codec: str  # the codec as a decoder reports it
    video_options: dict[str, str]
    audio_encoder: str | None
    audio_codec: str | None
    audio_rate: int | None
    audio_bit_rate: int
    fps: int
    width: int
    height: int
    duration_s: float
    speech: tuple[tuple[float, float], ...]
    words: tuple[Word, ...]
    scene_changes_s: tuple[float, ...]

    @property
    def frame_count(self) -> int:
        return round(self.duration_s * self.fps)


# asm=0: see the module docstring (determinism); at these sizes the C code is fast enough.
X264_OPTIONS = {"preset": "medium", "crf": "23", "threads": "1", "x264-params": "threads=1:asm=0"}
VP9_OPTIONS = {
    "crf": "34",
    "b": "0",
    "deadline": "good",
    "cpu-used": "2",
    "threads": "1",
    "row-mt": "0",
    "tile-columns": "0",
}

VIDEOS: tuple[VideoSpec, ...] = (
    VideoSpec(
        video_id="talk",
        file="talk.mp4",
        container="mp4",
        video_encoder="libx264",
        video_codec="h264",
        video_options=X264_OPTIONS,
        audio_encoder="aac",
        audio_codec="aac",
        audio_rate=SPEECH_RATE,
        audio_bit_rate=32_000,
        fps=25,
        width=160,
        height=96,
        duration_s=6.0,
        speech=((0.8, 2.4), (3.4, 5.2)),
        words=(Word("MODEL", 0.4, 2.0), Word("CACHE", 3.6, 5.2)),
        scene_changes_s=(3.0,),
    ),
    VideoSpec(
        video_id="street",
        file="street.webm",
        container="webm",
        video_encoder="libvpx-vp9",
        video_codec="vp9",
        video_options=VP9_OPTIONS,
        audio_encoder="libopus",
        audio_codec="opus",
        audio_rate=OPUS_RATE,
        audio_bit_rate=24_000,
        fps=15,
        width=192,
        height=112,
        duration_s=5.0,
        speech=((0.6, 1.8), (2.8, 4.4)),
        words=(Word("CACHE", 0.4, 1.6), Word("MODEL", 3.0, 4.2)),
        scene_changes_s=(2.2,),
    ),
    VideoSpec(
        video_id="silent",
        file="silent.mp4",
        container="mp4",
        video_encoder="libx264",
        video_codec="h264",
        video_options=X264_OPTIONS,
        audio_encoder=None,
        audio_codec=None,
        audio_rate=None,
        audio_bit_rate=0,
        fps=30,
        width=160,
        height=96,
        duration_s=4.0,
        speech=(),
        words=(Word("MODEL", 0.5, 1.5), Word("CACHE", 2.5, 3.5)),
        scene_changes_s=(2.0,),
    ),
)


# --------------------------------------------------------------------------- pictures


def frame_index(spec: VideoSpec, seconds: float) -> int:
    """The frame at ``seconds``; every time in the ground truth must fall on a frame boundary."""
    index = Fraction(seconds).limit_denominator(1000) * spec.fps
    if index.denominator != 1:
        raise ValueError(f"{spec.video_id}: {seconds} s is not on a frame boundary at {spec.fps}")
    return int(index)


def word_at(spec: VideoSpec, index: int) -> str | None:
    """The word shown on frame ``index`` (``None`` for none)."""
    for w in spec.words:
        if frame_index(spec, w.start_s) <= index < frame_index(spec, w.end_s):
            return w.word
    return None


def scene_at(spec: VideoSpec, index: int) -> int:
    """The scene (0, 1, ...) frame ``index`` belongs to."""
    return sum(index >= frame_index(spec, s) for s in spec.scene_changes_s)


def draw_word(frame: NDArray[np.uint8], word: str) -> None:
    """Draw ``word`` centred in black, antialiased, on a white card, as a caption would be.

    Font size and padding scale with the frame height (30 px and 8 px at 96 px high).
    """
    height, width = frame.shape[:2]
    scale = height / CARD_FRAME_HEIGHT
    font = ImageFont.load_default(size=round(CARD_FONT_SIZE * scale))
    left, top, right, bottom = font.getbbox(word)
    pad = round(8 * scale)
    card = Image.new("L", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), 255)
    ImageDraw.Draw(card).text((pad - left, pad - top), word, font=font, fill=0)
    ink = np.asarray(card, dtype=np.uint8)
    h, w = ink.shape
    if h > height or w > width:
        raise ValueError(f"the card for {word!r} ({w}x{h}) does not fit a {width}x{height} frame")
    y0, x0 = (height - h) // 2, (width - w) // 2
    frame[y0 : y0 + h, x0 : x0 + w] = ink[:, :, None]


def _bounce(t: float, speed: float, span: int) -> int:
    """Position at ``t`` seconds of something moving at ``speed`` px/s to and fro over ``span``."""
    travelled = round(t * speed) % (2 * span)
    return travelled if travelled <= span else 2 * span - travelled


def _ramp_scene(spec: VideoSpec, index: int) -> NDArray[np.uint8]:
    """The first scene: red/green colour ramps, a slow blue swell, a yellow square."""
    w, h = spec.width, spec.height
    t = index / spec.fps
    ys, xs = np.mgrid[0:h, 0:w]
    frame = np.empty((h, w, 3), np.uint8)
    frame[..., 0] = (xs * 255 // (w - 1)).astype(np.uint8)
    frame[..., 1] = (ys * 255 // (h - 1)).astype(np.uint8)
    frame[..., 2] = np.uint8(round(100 + 40 * math.sin(2.0 * math.pi * t / 4.0)))
    side = h // 6
    x = _bounce(t, 60.0, w - side)
    frame[4 : 4 + side, x : x + side] = (255, 255, 0)
    return frame


def _wave_scene(spec: VideoSpec, index: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """A dark blue-green pattern of a few drifting waves (random but smooth), a red square."""
    w, h = spec.width, spec.height
    t = index / spec.fps
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros((h, w))
    for _ in range(4):
        kx, ky = rng.uniform(-0.12, 0.12, size=2) * (96 / h)
        phase, speed = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(1.0, 3.0)  # rad/s
        field += np.sin(kx * xs + ky * ys + phase + speed * t)
    field = (field + 4.0) / 8.0  # 0..1
    frame = np.empty((h, w, 3), np.uint8)
    frame[..., 0] = np.round(10 + 30 * field).astype(np.uint8)
    frame[..., 1] = np.round(50 + 90 * field).astype(np.uint8)
    frame[..., 2] = np.round(80 + 110 * field).astype(np.uint8)
    side = h // 5
    x = w - side - _bounce(t, 40.0, w - side)
    frame[h - side - 4 : h - 4, x : x + side] = (220, 30, 30)
    return frame


def make_frames(spec: VideoSpec, seed: int) -> Iterator[NDArray[np.uint8]]:
    """The RGB frames [H, W, 3] uint8, one per ``1 / fps`` seconds."""
    for index in range(spec.frame_count):
        scene = scene_at(spec, index)
        if scene % 2 == 0:
            frame = _ramp_scene(spec, index)
        else:  # the same waves through a scene: a fresh generator from the scene's seed
            frame = _wave_scene(spec, index, np.random.default_rng([seed, scene]))
        word = word_at(spec, index)
        if word is not None:
            draw_word(frame, word)
        yield frame


def rgb_to_yuv420p(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """BT.601 limited-range YUV 4:2:0 planes stacked as FFmpeg's ``yuv420p`` ndarray layout.

    Integer arithmetic, so the result does not depend on the CPU (unlike swscale's SIMD paths).
    """
    h, w = rgb.shape[:2]
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128

    def down(c: NDArray[np.int32]) -> NDArray[np.int32]:
        blocks = c.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
        result: NDArray[np.int32] = (blocks + 2) >> 2
        return result

    planes = [y.reshape(-1), down(u).reshape(-1), down(v).reshape(-1)]
    packed: NDArray[np.uint8] = np.concatenate(planes).astype(np.uint8).reshape(h * 3 // 2, w)
    return packed


# --------------------------------------------------------------------------- sound

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
    r = math.exp(-math.pi * bw / SPEECH_RATE)
    a1 = 2.0 * r * np.cos(2.0 * np.pi * freqs / SPEECH_RATE)
    a2 = -r * r
    gain = 1.0 - r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for n in range(len(x)):
        v = gain * float(x[n]) + float(a1[n]) * y1 + a2 * y2
        y[n] = v
        y2, y1 = y1, v
    return y


def speech(duration_s: float, rng: np.random.Generator, first_vowel: int) -> NDArray[np.float64]:
    """Voiced, syllabic sound of ``duration_s`` seconds at 16 kHz, peak-normalised to 1."""
    n = round(duration_s * SPEECH_RATE)
    t = np.arange(n) / SPEECH_RATE
    # Pitch: a slow declination plus intonation wobble, 100-190 Hz.
    f0 = 150.0 - 20.0 * t / duration_s + 30.0 * np.sin(2.0 * np.pi * 0.9 * t + rng.uniform(0, 6))
    f0 *= 1.0 + 0.01 * rng.standard_normal(n).cumsum() / math.sqrt(n)
    phase = np.cumsum(f0) / SPEECH_RATE
    # Glottal source: a Rosenberg-like pulse per period (sharp closure → rich harmonics).
    frac = phase - np.floor(phase)
    open_q = 0.6
    pulse = np.where(
        frac < open_q,
        0.5 * (1.0 - np.cos(np.pi * frac / open_q)),
        np.cos(0.5 * np.pi * (frac - open_q) / (1.0 - open_q)),
    )
    source = np.diff(pulse, prepend=pulse[0]) * SPEECH_RATE / 200.0
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
    voice = voiced * envelope
    normalised: NDArray[np.float64] = voice / float(np.max(np.abs(voice)))
    return normalised


def make_speech_track(spec: VideoSpec, rng: np.random.Generator) -> NDArray[np.float64]:
    """The 16 kHz track in [-1, 1]: faint noise, the voice (:func:`speech`) in ``spec.speech``."""
    n = round(spec.duration_s * SPEECH_RATE)
    audio = 0.002 * rng.standard_normal(n)
    for i, (start, end) in enumerate(spec.speech):
        a, b = round(start * SPEECH_RATE), round(end * SPEECH_RATE)
        audio[a:b] += 0.5 * speech(end - start, rng, 2 * i + 1)
    clipped: NDArray[np.float64] = np.clip(audio, -1.0, 1.0)
    return clipped


def upsample(x: NDArray[np.float64], factor: int, taps_per_phase: int = 16) -> NDArray[np.float64]:
    """Integer-factor upsampling: zero-stuffing and a Blackman-windowed sinc low-pass."""
    half = taps_per_phase * factor
    k = np.arange(-half, half + 1)
    kernel = np.sinc(k / factor) * np.blackman(len(k))
    kernel *= factor / kernel.sum()
    stuffed = np.zeros(len(x) * factor)
    stuffed[::factor] = x
    y: NDArray[np.float64] = np.convolve(stuffed, kernel)[half : half + len(stuffed)]
    return y


def make_audio(spec: VideoSpec, rng: np.random.Generator) -> NDArray[np.float32]:
    """The track at ``spec.audio_rate`` as float32, rounded through 16-bit PCM."""
    assert spec.audio_rate is not None
    track = make_speech_track(spec, rng)
    if spec.audio_rate != SPEECH_RATE:
        if spec.audio_rate % SPEECH_RATE:
            raise ValueError(f"cannot upsample {SPEECH_RATE} Hz to {spec.audio_rate} Hz")
        track = upsample(track, spec.audio_rate // SPEECH_RATE)
    pcm = np.round(np.clip(track, -1.0, 1.0) * 32767.0)
    audio: NDArray[np.float32] = (pcm / 32768.0).astype(np.float32)
    return audio


# --------------------------------------------------------------------------- encoding


def _add_video_stream(out: av.container.OutputContainer, spec: VideoSpec) -> av.VideoStream:
    stream = out.add_stream(spec.video_encoder, rate=spec.fps, options=dict(spec.video_options))
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height = spec.width, spec.height
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = Fraction(1, spec.fps)
    stream.codec_context.thread_count = 1
    stream.codec_context.flags |= Flags.bitexact
    return stream


def _add_audio_stream(
    out: av.container.OutputContainer, encoder: str, rate: int, bit_rate: int
) -> av.AudioStream:
    stream = out.add_stream(encoder, rate=rate)
    assert isinstance(stream, av.AudioStream)
    stream.layout = "mono"
    stream.format = "fltp" if encoder == "aac" else "flt"  # what each encoder takes
    stream.bit_rate = bit_rate
    stream.codec_context.time_base = Fraction(1, rate)
    stream.codec_context.thread_count = 1
    stream.codec_context.flags |= Flags.bitexact
    return stream


def encode(spec: VideoSpec, path: Path, seed: int) -> None:
    """Encode ``spec``'s frames (and sound) into ``path``, the sound interleaved frame by frame."""
    video_seed, audio_seed = np.random.SeedSequence(seed).spawn(2)
    with av.open(
        str(path), mode="w", format=spec.container, container_options=CONTAINER_OPTIONS
    ) as out:
        vstream = _add_video_stream(out, spec)
        astream: av.AudioStream | None = None
        if spec.audio_encoder is not None and spec.audio_rate is not None:
            astream = _add_audio_stream(
                out, spec.audio_encoder, spec.audio_rate, spec.audio_bit_rate
            )
        out.start_encoding()  # opens the encoders: the audio frame size is known from here

        sound: list[av.AudioFrame] = (
            [] if astream is None else _audio_frames(spec, astream, audio_seed)
        )
        frames = make_frames(spec, int(video_seed.generate_state(1)[0]))
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
            frame.pts = index
            frame.time_base = Fraction(1, spec.fps)
            out.mux(vstream.encode(frame))
            end = Fraction(index + 1, spec.fps)
            while astream is not None and sound and Fraction(sound[0].pts or 0, astream.rate) < end:
                out.mux(astream.encode(sound.pop(0)))
        out.mux(vstream.encode(None))
        if astream is not None:
            for aframe in sound:
                out.mux(astream.encode(aframe))
            out.mux(astream.encode(None))


def _audio_frames(
    spec: VideoSpec, stream: av.AudioStream, seed: np.random.SeedSequence
) -> list[av.AudioFrame]:
    """The track cut into frames of the encoder's frame size."""
    audio = make_audio(spec, np.random.default_rng(seed))
    size = stream.codec_context.frame_size
    frames = []
    for start in range(0, len(audio), size):
        frame = av.AudioFrame.from_ndarray(
            audio[None, start : start + size], format=stream.format.name, layout="mono"
        )
        frame.sample_rate = stream.sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, stream.sample_rate)
        frames.append(frame)
    return frames


def ground_truth(spec: VideoSpec) -> dict[str, Any]:
    """The video's entry in ``videos.json``: a ``modelmanager run --videos`` list item (a
    video without audio runs only the components that read frames) and its ground truth."""
    entry: dict[str, Any] = {
        "file": spec.file,
        "platform_id": "local",
        "video_id": spec.video_id,
    }
    if spec.audio_codec is None:
        entry["components"] = ["text_ocr", "frame_safety"]
    return entry | {
        "container": spec.container,
        "video_codec": spec.video_codec,
        "audio_codec": spec.audio_codec,
        "fps": spec.fps,
        "width": spec.width,
        "height": spec.height,
        "duration_s": spec.duration_s,
        "speech": [list(iv) for iv in spec.speech],
        "words": [{"word": w.word, "start_s": w.start_s, "end_s": w.end_s} for w in spec.words],
        "scene_changes_s": list(spec.scene_changes_s),
    }


def build(out: Path) -> list[Path]:
    """Write the three videos and ``videos.json`` into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(SEED).spawn(len(VIDEOS))
    paths = []
    for spec, seed in zip(VIDEOS, seeds, strict=True):
        path = out / spec.file
        encode(spec, path, int(seed.generate_state(1)[0]))
        paths.append(path)
    meta = out / "videos.json"
    document = [ground_truth(spec) for spec in VIDEOS]
    meta.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return [*paths, meta]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
