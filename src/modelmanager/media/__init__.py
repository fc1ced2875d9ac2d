"""Input media: the sampling policy and decoding input videos (PyAV, imported on use).

policy.py   SamplingPolicy: which frames, what size; its key_version goes into keys
decode.py   probe_video, decode_video: one streamed pass over the file
"""

from __future__ import annotations

from modelmanager.mapping.sampling import AUDIO_RATE, DEFAULT_POLICY, SamplingPolicy, parse_policy
from modelmanager.media.decode import (
    AudioTrack,
    DecodedVideo,
    VideoInfo,
    VideoInputs,
    decode_video,
    probe_video,
)

__all__ = [
    "AUDIO_RATE",
    "DEFAULT_POLICY",
    "AudioTrack",
    "DecodedVideo",
    "SamplingPolicy",
    "VideoInfo",
    "VideoInputs",
    "decode_video",
    "parse_policy",
    "probe_video",
]
