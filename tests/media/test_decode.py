"""Issue 13: input videos decode in one streamed pass to the policy's frames and 16 kHz mono
audio; bad input is refused under its own code, naming the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelmanager.errors import ConfigurationInvalid, VideoInvalid
from modelmanager.media import AUDIO_RATE, SamplingPolicy, decode_video, probe_video

from .videos import write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "grey.mp4", seconds=2.0, fps=25)


def test_probe_describes_the_container(video: Path) -> None:
    info = probe_video(video)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height, info.fps) == (64, 48, 25.0)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)


def test_frames_follow_the_policy_by_timestamp(video: Path) -> None:
    decoded = decode_video(video, SamplingPolicy(fps=2, max_frames=100))
    assert decoded.frames.shape == (4, 48, 64, 3)
    assert decoded.frames.dtype == np.uint8
    # The first frame at or after each half second (frames are 40 ms apart): 0, 13, 25, 38.
    np.testing.assert_allclose(decoded.frame_times_s, [0.0, 0.52, 1.0, 1.52])
    greys = decoded.frames.reshape(4, -1).mean(axis=1)  # frame i is grey (i * 7) % 256
    np.testing.assert_allclose(greys, [0, 91, 175, 266 % 256], atol=4)


def test_max_frames_and_size(video: Path) -> None:
    decoded = decode_video(video, SamplingPolicy(fps=25, max_frames=3, width=32, height=16))
    assert decoded.frames.shape == (3, 16, 32, 3)
    # The audio is whole even though video decoding stopped after three frames.
    assert decoded.audio is not None
    assert len(decoded.audio) == pytest.approx(2 * AUDIO_RATE, rel=0.05)


def test_audio_is_16k_mono_float(video: Path) -> None:
    decoded = decode_video(video)
    assert decoded.audio is not None
    assert decoded.audio.dtype == np.float32
    assert decoded.sample_rate == AUDIO_RATE
    middle = decoded.audio[AUDIO_RATE // 2 : AUDIO_RATE]
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.05)  # the 440 Hz tone's peak
    crossings = np.count_nonzero(np.diff(np.signbit(middle)))
    assert crossings == pytest.approx(440, rel=0.02)  # 0.5 s of 440 Hz: 440 sign changes


def test_a_video_without_audio_decodes_with_audio_none(tmp_path: Path) -> None:
    silent = write_video(tmp_path / "silent.mp4", audio_rate=None)
    decoded = decode_video(silent)
    assert decoded.audio is None
    assert decoded.info.audio_codec is None
    assert len(decoded.frames) == 2


def test_a_missing_file_is_bad_input_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalid) as caught:
        decode_video(tmp_path / "nope.mp4")
    assert caught.value.exit_code == 2
    assert caught.value.fields["path"] == [str(tmp_path / "nope.mp4")]


@pytest.mark.parametrize(
    "content", [b"", b"not a video at all", bytes(range(256)) * 64], ids=["empty", "text", "noise"]
)
def test_a_file_that_is_no_video_is_video_invalid(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoInvalid) as caught:
        decode_video(path)
    assert caught.value.exit_code == 2
    assert caught.value.fields["path"] == str(path)


def test_an_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    import av

    path = tmp_path / "audio.m4a"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16_000, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="flt", layout="mono"
        )
        frame.sample_rate = 16_000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoInvalid, match="no video stream"):
        probe_video(path)


@pytest.fixture(scope="module")
def webm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(
        tmp_path_factory.mktemp("w") / "grey.webm", codec="libvpx-vp9", audio_rate=48_000
    )


def test_a_webm_decodes_too(webm: Path) -> None:
    decoded = decode_video(webm, SamplingPolicy(fps=2))
    assert (decoded.info.video_codec, decoded.info.audio_codec) == ("vp9", "opus")
    assert len(decoded.frames) == 4
    assert decoded.audio is not None
    assert len(decoded.audio) == pytest.approx(2 * AUDIO_RATE, rel=0.05)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_a_truncated_file_is_video_invalid(
    video: Path, webm: Path, tmp_path: Path, keep: float, kind: str
) -> None:
    data = (video if kind == "mp4" else webm).read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoInvalid) as caught:
        decode_video(cut)
    assert caught.value.fields["path"] == str(cut)


def test_progress_reaches_the_duration(video: Path) -> None:
    seen: list[tuple[float, float]] = []
    decode_video(video, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == pytest.approx(seen[-1][1], abs=0.1)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_an_audio_track_streams_exactly_the_samples_decode_video_gives(video: Path) -> None:
    """Issue 13: the audio a run streams (one chunk at a time) is byte for byte the whole
    track decode_video returns."""
    from modelmanager.media import AudioTrack

    whole = decode_video(video).audio
    assert whole is not None
    chunks = list(AudioTrack(video).chunks())
    assert len(chunks) > 10  # streamed, not one array
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    np.testing.assert_array_equal(AudioTrack(video).read(), whole)


def test_frames_without_audio_stop_reading_at_the_policys_last_frame(video: Path) -> None:
    policy = SamplingPolicy(fps=2, max_frames=2)
    both = decode_video(video, policy)
    frames_only = decode_video(video, policy, audio=False)
    assert frames_only.audio is None
    np.testing.assert_array_equal(frames_only.frames, both.frames)
    seen: list[float] = []
    decode_video(video, policy, audio=False, progress=lambda done, _: seen.append(done))
    assert max(seen) < 1.0  # two frames at 0 and 0.52 s: the rest of the 2 s is not read


def test_a_truncated_files_audio_track_is_video_invalid(webm: Path, tmp_path: Path) -> None:
    from modelmanager.media import AudioTrack

    data = webm.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoInvalid, match="truncated"):
        list(AudioTrack(cut).chunks())


def test_video_inputs_decode_nothing_until_asked(video: Path, tmp_path: Path) -> None:
    from modelmanager.media import AudioTrack, VideoInputs

    silent = write_video(tmp_path / "silent.mp4", audio_rate=None)
    inputs = VideoInputs(probe_video(video), SamplingPolicy(fps=2))
    assert inputs._decoded is None
    assert isinstance(inputs["audio"], AudioTrack)
    assert inputs._decoded is None  # the audio is streamed by whoever reads it
    assert inputs["frames"].shape == (4, 48, 64, 3)
    assert VideoInputs(probe_video(silent), SamplingPolicy())["audio"] is None
