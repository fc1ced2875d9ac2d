"""decode: decoding an input video (``modelmanager.media.decode_video``) against PyAV itself.

Inputs, generated once per run in the workspace's scratch dir with PyAV (deterministic:
a moving RGB gradient plus a fixed cycle of low-amplitude noise tiles; a 440 Hz tone,
AAC mono at 48 kHz):

* throughput: an H.264 (libx264 ``veryfast``: CABAC, B-frames) + AAC MP4, 640x360 at
  25 fps, 20 s (QUICK: 4 s);
* memory: two H.264 (``ultrafast``, for generation speed) + AAC MP4s at 320x180 and
  25 fps, 10 min and a quarter of that, 2.5 min (QUICK: 1 min and 15 s).

Throughput, timed side by side in one process (:func:`~benchmarks.harness.interleaved`,
``file_reps`` repetitions after one warm-up round, medians), frames/s of the video:

* ours: ``decode_video(path, policy)`` with a policy that keeps every frame at the
  video's own size (``fps`` = the video's 25, ``max_frames`` 100,000): every frame is
  converted to RGB and kept, the audio resampled to 16 kHz mono float32;
* floor: PyAV called directly: ``av.open``, the same ``thread_type = "AUTO"`` on the
  video stream, ``container.decode(video=0, audio=0)``, ``frame.to_ndarray(format="rgb24")``
  for every video frame (then dropped), the audio frames decoded but not resampled;
* reference (notes only): the floor, keeping the RGB frames (``np.stack``-ed at the end;
  ``decode_video`` fills one array in place); it shows what part of the gap is the
  frames' memory.

Both sides are checked to decode the same number of frames. The ratio is ours/floor in
time. No target (reference).

Peak memory: what a run holds of a video's inputs (``VideoInputs`` with the DEFAULT
policy: 1 frame/s, 64 frames, own size; the frames decoded, the audio track streamed
chunk by chunk as ``audio_vad`` reads it), in a fresh subprocess that then reports its
peak RSS, less that of a subprocess which only imports av, numpy and
``modelmanager.media`` (median of 3 runs each; QUICK: 1). The peak is ``VmHWM`` from
``/proc/self/status`` on Linux, not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries
ru_maxrss across ``execve``, and ``subprocess`` forks this process (vfork), so a child's
ru_maxrss starts at this process's own peak, hundreds of MiB after the throughput part;
``VmHWM`` belongs to the new address space. Elsewhere ru_maxrss is used. Frames are
bounded by the policy and the audio is streamed, so a video four times as long must not
cost more (QUICK: the 15 s video keeps 15 frames, not 64; the difference is added to
what is expected and allowed). Target (this benchmark's own, not a project budget):
growth ≤ the extra frames + 20 MiB, whatever the length.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from modelmanager.media import AUDIO_RATE, DEFAULT_POLICY, SamplingPolicy, decode_video

from .harness import MiB, Result, Workspace, interleaved, median

NAME = "decode"
FPS = 25
AUDIO_SOURCE_RATE = 48_000
AUDIO_FRAME_SAMPLES = 1024
TONE_HZ = 440.0
NOISE_TILES = 8
NOISE_MAX = 8
THROUGHPUT_SIZE = (640, 360)
MEMORY_SIZE = (320, 180)
GROWTH_SLACK_BYTES = 20 * MiB
_IMPORTS = "import json, os, resource, sys, av, numpy, modelmanager.media\n"
_REPORT = """
if os.path.exists("/proc/self/status"):
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024
print(json.dumps({"maxrss": peak, **out}))
"""
_DECODE_CHILD = (
    _IMPORTS
    + "from modelmanager.media import DEFAULT_POLICY, VideoInputs, probe_video\n"
    + "inputs = VideoInputs(probe_video(sys.argv[1]), DEFAULT_POLICY)\n"
    + "frames = inputs['frames']\n"
    + "samples = sum(chunk.size for chunk in inputs['audio'].chunks())\n"
    + "out = {'frames': len(frames), 'audio_samples': samples}\n"
    + _REPORT
)
_IMPORTS_CHILD = _IMPORTS + "out = {}\n" + _REPORT


# --- generated inputs -----------------------------------------------------------


def write_video(path: Path, size: tuple[int, int], seconds: float, preset: str) -> Path:
    """An H.264 + AAC MP4 of ``seconds`` at :data:`FPS`: moving gradient + noise, a tone."""
    width, height = size
    frames = round(seconds * FPS)
    rng = np.random.default_rng(0)
    noise = [
        rng.integers(0, NOISE_MAX, (height, width, 3), dtype=np.uint8) for _ in range(NOISE_TILES)
    ]
    x = np.arange(width, dtype=np.int64)[None, :]
    y = np.arange(height, dtype=np.int64)[:, None]
    samples_total = round(seconds * AUDIO_SOURCE_RATE)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": preset}
        audio = container.add_stream("aac", rate=AUDIO_SOURCE_RATE)
        audio.layout = "mono"
        done = 0
        image = np.empty((height, width, 3), np.uint8)
        for i in range(frames):
            image[..., 0] = (x + 4 * i) % 256
            image[..., 1] = (y + 2 * i) % 256
            image[..., 2] = (x + y + i) % 256
            image += noise[i % NOISE_TILES]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
            until = min(samples_total, (i + 1) * AUDIO_SOURCE_RATE // FPS)
            while done < until:
                n = min(AUDIO_FRAME_SAMPLES, samples_total - done)
                container.mux(audio.encode(_tone(done, n)))
                done += n
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def _tone(start: int, n: int) -> av.AudioFrame:
    t = np.arange(start, start + n, dtype=np.float64) / AUDIO_SOURCE_RATE
    samples = (0.3 * np.sin(2 * math.pi * TONE_HZ * t)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
    frame.sample_rate = AUDIO_SOURCE_RATE
    frame.pts = start
    frame.time_base = Fraction(1, AUDIO_SOURCE_RATE)
    return frame


# --- throughput -------------------------------------------------------------------


def _floor(path: Path, *, keep: bool) -> int:
    """PyAV directly: every video frame to RGB, the audio decoded; the frame count."""
    kept: list[NDArray[np.generic]] = []
    count = 0
    with av.open(str(path), mode="r") as container:
        container.streams.video[0].thread_type = "AUTO"
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                rgb = frame.to_ndarray(format="rgb24")
                count += 1
                if keep:
                    kept.append(rgb)
    if keep:
        np.stack(kept)
    return count


def _contenders(path: Path, policy: SamplingPolicy) -> dict[str, Callable[[], int]]:
    return {
        "ours": lambda: len(decode_video(path, policy).frames),
        "floor": lambda: _floor(path, keep=False),
        "floor + kept": lambda: _floor(path, keep=True),
    }


def _throughput(ws: Workspace, scratch: Path) -> Result:
    seconds = 4 if ws.config.quick else 20
    path = write_video(scratch / "throughput.mp4", THROUGHPUT_SIZE, seconds, "veryfast")
    policy = SamplingPolicy(fps=FPS, max_frames=100_000)
    contenders = _contenders(path, policy)
    counts = {name: fn() for name, fn in contenders.items()}  # doubles as the warm-up
    if len(set(counts.values())) != 1:
        raise AssertionError(f"the contenders decoded different frame counts: {counts}")
    frames = counts["ours"]
    reps = ws.config.file_reps
    samples = interleaved(contenders, reps, warmup=0)
    med = {name: median(s) for name, s in samples.items()}
    fps = {name: frames / (ns / 1e9) for name, ns in med.items()}
    width, height = THROUGHPUT_SIZE
    kept_mib = frames * width * height * 3 / MiB
    return Result(
        name="decode: decode_video, every frame kept",
        value=fps["ours"],
        unit="frames/s",
        baseline_name="PyAV direct (floor)",
        baseline_value=fps["floor"],
        ratio=med["ours"] / med["floor"],
        target="none (reference); ratio is time ours/floor",
        met=None,
        notes=(
            f"H.264+AAC {width}x{height} {FPS} fps, {seconds} s ({frames} frames), median of "
            f"{reps}; ours keeps all frames ({kept_mib:.0f} MiB RGB): "
            f"the floor doing the same runs {fps['floor + kept']:.0f} frames/s "
            f"(ours/it in time {med['ours'] / med['floor + kept']:.2f}×)"
        ),
    )


# --- peak memory ----------------------------------------------------------------


def _child(script: str, *args: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args], check=True, capture_output=True, text=True
    ).stdout
    report: dict[str, int] = json.loads(out.splitlines()[-1])
    return report


def _peak(script: str, reps: int, *args: str) -> tuple[float, dict[str, int]]:
    """Median ru_maxrss (bytes) of ``reps`` fresh subprocesses, and the last one's report."""
    reports = [_child(script, *args) for _ in range(reps)]
    return statistics.median(r["maxrss"] for r in reports), reports[-1]


def _memory(ws: Workspace, scratch: Path) -> list[Result]:
    long_s = 60 if ws.config.quick else 600
    short_s = long_s // 4
    long_path = write_video(scratch / "long.mp4", MEMORY_SIZE, long_s, "ultrafast")
    short_path = write_video(scratch / "short.mp4", MEMORY_SIZE, short_s, "ultrafast")
    reps = 1 if ws.config.quick else 3
    imports, _ = _peak(_IMPORTS_CHILD, reps)
    long_rss, long_out = _peak(_DECODE_CHILD, reps, str(long_path))
    short_rss, short_out = _peak(_DECODE_CHILD, reps, str(short_path))
    for seconds, out in ((long_s, long_out), (short_s, short_out)):
        frames = min(DEFAULT_POLICY.max_frames, math.ceil(seconds * DEFAULT_POLICY.fps))
        if out["frames"] != frames:
            raise AssertionError(f"{seconds} s video: {out['frames']} frames, not {frames}")
        if abs(out["audio_samples"] - seconds * AUDIO_RATE) > AUDIO_RATE // 10:
            raise AssertionError(f"{seconds} s video: {out['audio_samples']} audio samples")
    long_net, short_net = (long_rss - imports) / MiB, (short_rss - imports) / MiB
    growth = long_net - short_net
    width, height = MEMORY_SIZE
    audio_bytes = (long_out["audio_samples"] - short_out["audio_samples"]) * 4
    # Both videos keep max_frames frames in a full run; the QUICK short one keeps fewer.
    frames_bytes = (long_out["frames"] - short_out["frames"]) * width * height * 3
    expected = frames_bytes / MiB
    allowed = frames_bytes + GROWTH_SLACK_BYTES
    frames_text = (
        "frames are bounded"
        if not frames_bytes
        else f"+ {frames_bytes / MiB:.1f} MiB for the short video's "
        f"{long_out['frames'] - short_out['frames']} frames fewer"
    )
    runs = f"median of {reps} fresh subprocesses" if reps > 1 else "one fresh subprocess"
    return [
        Result(
            name=f"decode: a run's inputs, peak RSS, {_duration(long_s)} video",
            value=long_net,
            unit="MiB",
            baseline_name=f"same, {_duration(short_s)} video",
            baseline_value=short_net,
            ratio=long_net / short_net,
            target="none (reported; growth judged below)",
            met=None,
            notes=(
                f"peak RSS above a process importing av, numpy, modelmanager.media "
                f"({imports / MiB:.0f} MiB), {runs}; {width}x{height} {FPS} fps H.264+AAC; "
                f"{long_out['frames']} and {short_out['frames']} frames kept "
                f"({width * height * 3 / MiB:.2f} MiB each)"
            ),
        ),
        Result(
            name=f"decode: peak RSS growth, {_duration(short_s)} → {_duration(long_s)}",
            value=growth,
            unit="MiB",
            baseline_name="expected: the extra frames only",
            baseline_value=expected,
            ratio=growth / expected if frames_bytes else None,
            target=f"≤ extra frames + {GROWTH_SLACK_BYTES // MiB} MiB",
            met=growth * MiB <= allowed,
            notes=(
                f"the audio is streamed: {long_s - short_s} s more of it "
                f"({audio_bytes / MiB:.1f} MiB as float32) must not stay in memory; "
                f"{frames_text}; allowed {allowed / MiB:.1f} MiB, measured {growth:.1f} MiB"
            ),
        ),
    ]


def _duration(seconds: int) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds} s"


def run(ws: Workspace) -> list[Result]:
    scratch = ws.scratch_dir("decode")
    return [_throughput(ws, scratch), *_memory(ws, scratch)]
