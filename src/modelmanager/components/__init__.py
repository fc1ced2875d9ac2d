"""Components of the DataProcessor that run real models through the Runner."""

from __future__ import annotations

from .audio_vad import AudioVAD
from .frame_safety import FrameSafety

__all__ = ["REGISTRY", "AudioVAD", "FrameSafety"]


REGISTRY: dict[str, type[AudioVAD] | type[FrameSafety]] = {
    AudioVAD.name: AudioVAD,
    FrameSafety.name: FrameSafety,
}
"""The components ``modelmanager run`` knows, by the name a profile maps them under."""
