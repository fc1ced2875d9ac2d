"""Decoding an input video: the policy's frames, and its audio track.

PyAV (FFmpeg in its wheel: no system ffmpeg, nothing downloaded). The frames: one pass
over the video stream that stops at the policy's last frame, each kept frame converted
(scaled to the policy's size, RGB) as it is met, so memory holds the kept frames, never
the video. The audio: :class:`AudioTrack`, one pass over the audio stream, resampled on
the fly to 16 kHz mono float32 (64 KB per second of video), streamed chunk by chunk or
read whole.

Bad input is :class:`~modelmanager.errors.VideoInvalid` (exit 2) naming the path and
why: not a video, no video stream, a file that ends before its stated duration.
A video without audio decodes with ``audio=None``: the components that need audio say so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from modelmanager.errors import (
    ConfigurationInvalid,
    ModelManagerError,
    VideoDecoderMissing,
    VideoInvalid,
)
from modelmanager.mapping.sampling import AUDIO_RATE, DEFAULT_POLICY, SamplingPolicy

if TYPE_CHECKING:
    import av.container

__all__ = [
    "AudioTrack",
    "DecodedVideo",
    "VideoInfo",
    "VideoInputs",
    "decode_video",
    "probe_video",
]

TRUNCATED_SLACK_S = 0.1
"""A file whose streams end earlier than its stated duration, less two frame intervals and
this much, is truncated (a whole file's last frame starts one interval before the end)."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the container says of a video."""

    path: Path
    container: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    fps: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class DecodedVideo:
    """The policy's frames (uint8 [N, H, W, 3], RGB) with their times, and the audio track
    (float32 in [-1, 1], mono at :data:`AUDIO_RATE`; None if the video has none)."""

    info: VideoInfo
    policy: SamplingPolicy
    frames: NDArray[np.uint8]
    frame_times_s: NDArray[np.float64]
    audio: NDArray[np.float32] | None
    sample_rate: int = AUDIO_RATE


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """The container's description of the video at ``path`` (nothing is decoded).

    Raises:
        ConfigurationInvalid: no such file.
        VideoInvalid: not a video, or no video stream.
        VideoDecoderMissing: PyAV is not installed.
    """
    with _opened(Path(path)) as (container, info):
        del container
        return info


def decode_video(
    path: str | os.PathLike[str],
    policy: SamplingPolicy = DEFAULT_POLICY,
    *,
    audio: bool = True,
    progress: Callable[[float, float], None] | None = None,
) -> DecodedVideo:
    """Decode the policy's frames and the audio track of the video at ``path``.

    Frames are taken by timestamp: the first frame at or after each ``k / policy.fps``
    seconds, up to ``policy.max_frames``; reading stops at the policy's last frame. The
    audio track is then read whole (:meth:`AudioTrack.read`); with ``audio=False`` it is
    left out (``audio`` is None; :class:`AudioTrack` streams it instead).
    ``progress(seconds_done, duration_s)`` is called as the frames pass advances.

    Raises:
        ConfigurationInvalid: no such file.
        VideoInvalid: not a video, no video stream, no frame, or truncated.
        VideoDecoderMissing: PyAV is not installed.
    """
    import av

    path = Path(path)
    with _opened(path) as (container, info):
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        has_audio = bool(container.streams.audio)
        # Filled in place (no list of pieces, no copy at the end: the peak is 1x the data).
        capacity = min(policy.max_frames, int((info.duration_s + 1.0) * policy.fps) + 1)
        frames = _Growing(np.uint8, capacity)
        times: list[float] = []
        last_s = 0.0
        stopped_early = False
        try:
            for packet in container.demux(video):
                if len(frames) >= policy.max_frames:
                    stopped_early = True  # the policy has its frames; nothing else is read
                    break
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    at = _seconds(frame.pts, frame.time_base, last_s)
                    if len(frames) < policy.max_frames and at + 1e-6 >= len(frames) / policy.fps:
                        frames.append(_rgb(frame, policy)[None])
                        times.append(at)
                    last_s = max(last_s, at)
                if progress is not None:
                    progress(last_s, info.duration_s)
        except av.error.FFmpegError as exc:
            raise _invalid(path, f"decoding failed at {last_s:.2f} s: {exc}") from exc
    if not frames:
        raise _invalid(path, "no frame could be decoded")
    if not stopped_early:
        _check_complete(path, info, last_s)
    return DecodedVideo(
        info=info,
        policy=policy,
        frames=frames.array(),
        frame_times_s=np.asarray(times, np.float64),
        audio=AudioTrack(path).read() if audio and has_audio else None,
    )


class AudioTrack:
    """A video's audio track, decoded and resampled (16 kHz mono float32) as it is read:
    whoever streams it (``audio_vad``) holds one chunk at a time, however long the video.

    A component takes it wherever it takes an array of samples: ``chunks()`` yields the
    samples in order; ``read()`` returns them all at once.
    """

    sample_rate = AUDIO_RATE

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def chunks(self) -> Iterator[NDArray[np.float32]]:
        """The samples, in order, a decoded audio frame's worth at a time.

        Raises:
            VideoInvalid: the file cannot be decoded, has no audio stream, or is truncated.
        """
        import av

        with _opened(self.path) as (container, info):
            if not container.streams.audio:
                raise _invalid(self.path, "it has no audio stream")
            stream = container.streams.audio[0]
            resampler = _resampler()
            last_s = 0.0
            try:
                for frame in container.decode(stream):
                    last_s = max(last_s, _seconds(frame.pts, frame.time_base, last_s))
                    yield from _samples(resampler.resample(frame))
                yield from _samples(resampler.resample(None))
            except av.error.FFmpegError as exc:
                raise _invalid(self.path, f"decoding failed at {last_s:.2f} s: {exc}") from exc
            _check_complete(self.path, info, last_s)

    def read(self) -> NDArray[np.float32]:
        """Every sample at once (what :func:`decode_video` gives as ``audio``), filled
        into one array sized from the stated duration."""
        capacity = int((probe_video(self.path).duration_s + 1.0) * AUDIO_RATE)
        samples = _Growing(np.float32, capacity)
        for chunk in self.chunks():
            samples.append(chunk)
        return samples.array()


def _resampler() -> Any:
    import av

    return av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)


def _check_complete(path: Path, info: VideoInfo, last_s: float) -> None:
    """Refuse a file whose streams end well before the duration its container states."""
    slack = 2 / max(info.fps, 1.0) + TRUNCATED_SLACK_S
    if info.duration_s > 0 and last_s < info.duration_s - slack:
        raise _invalid(
            path,
            f"truncated: its streams end at {last_s:.2f} s of the {info.duration_s:.2f} s "
            "the container states",
        )


@contextmanager
def _opened(path: Path) -> Iterator[tuple[av.container.InputContainer, VideoInfo]]:
    """The open container and its :class:`VideoInfo`; every refusal under our codes."""
    try:
        import av
    except ImportError as exc:
        raise VideoDecoderMissing(f"decoding {path} needs PyAV: {exc}", path=str(path)) from exc
    if not path.is_file():
        raise ConfigurationInvalid(f"no such video file: {path}", path=[str(path)], hint=None)
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _invalid(path, f"not a video FFmpeg can read ({exc})") from exc
    try:
        yield container, _info(path, container)
    finally:
        container.close()


def _info(path: Path, container: av.container.InputContainer) -> VideoInfo:
    if not container.streams.video:
        raise _invalid(path, "it has no video stream")
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    rate = video.average_rate or video.guessed_rate or video.base_rate
    if container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    elif video.duration is not None and video.time_base is not None:
        duration = float(video.duration * video.time_base)
    else:
        duration = 0.0
    return VideoInfo(
        path=path,
        container=container.format.name,
        video_codec=video.codec_context.name,
        audio_codec=None if audio is None else audio.codec_context.name,
        width=video.codec_context.width,
        height=video.codec_context.height,
        fps=float(rate) if rate else 0.0,
        duration_s=max(duration, 0.0),
    )


def _seconds(pts: int | None, time_base: Any, otherwise: float) -> float:
    return otherwise if pts is None or time_base is None else float(pts * time_base)


def _rgb(frame: Any, policy: SamplingPolicy) -> NDArray[np.uint8]:
    scaled = frame.reformat(width=policy.width, height=policy.height, format="rgb24")
    return np.asarray(scaled.to_ndarray(), np.uint8)


def _samples(frames: list[Any]) -> Iterator[NDArray[np.float32]]:
    for frame in frames:
        yield np.asarray(frame.to_ndarray(), np.float32).reshape(-1)


class _Growing:
    """An array filled along its first axis in place; its capacity doubles when full."""

    def __init__(self, dtype: type[np.generic], capacity: int) -> None:
        self._dtype, self._capacity = dtype, max(capacity, 1)
        self._data: NDArray[Any] | None = None
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def append(self, rows: NDArray[Any]) -> None:
        """Add ``rows`` (same trailing shape as every earlier one)."""
        end = self._length + len(rows)
        if self._data is None:
            capacity = max(self._capacity, end)
            self._data = np.empty((capacity, *rows.shape[1:]), self._dtype)
        elif end > len(self._data):
            grown = np.empty((max(end, 2 * len(self._data)), *rows.shape[1:]), self._dtype)
            grown[: self._length] = self._data[: self._length]
            self._data = grown
        self._data[self._length : end] = rows
        self._length = end

    def array(self) -> NDArray[Any]:
        """The rows so far (a view: no copy)."""
        if self._data is None:
            return np.empty(0, self._dtype)
        return self._data[: self._length]


def _invalid(path: Path, reason: str) -> VideoInvalid:
    return VideoInvalid(f"{path}: {reason}", path=str(path), reason=reason)


class VideoInputs(Mapping[str, Any]):
    """The components' inputs of one video — ``frames``, ``audio``, ``sample_rate`` — made
    on first use: a run whose components are all cached never decodes the video. The
    frames are decoded once (reading stops at the policy's last frame); ``audio`` is an
    :class:`AudioTrack`, streamed by the component that reads it, or None when the video
    has no audio stream. Memory is the kept frames plus one chunk of audio.

    A decoding failure of the frames is raised on every access (each component that
    reads them fails with it: ``video_invalid``).
    """

    KEYS = ("frames", "audio", "sample_rate")

    def __init__(self, info: VideoInfo, policy: SamplingPolicy) -> None:
        self.info, self.policy = info, policy
        self._decoded: DecodedVideo | None = None
        self._error: ModelManagerError | None = None

    @property
    def decoded(self) -> DecodedVideo:
        """The decoded frames (decoding them now if no component asked before)."""
        if self._error is not None:
            raise self._error
        if self._decoded is None:
            try:
                self._decoded = decode_video(self.info.path, self.policy, audio=False)
            except ModelManagerError as exc:
                self._error = exc
                raise
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        if key == "sample_rate":
            return AUDIO_RATE
        if key == "frames":
            return self.decoded.frames
        if key == "audio":
            return None if self.info.audio_codec is None else AudioTrack(self.info.path)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)
