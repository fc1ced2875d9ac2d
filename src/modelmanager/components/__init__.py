"""Components of the DataProcessor that run real models through the Runner."""

from __future__ import annotations

from .audio_vad import AudioVAD
from .frame_safety import FrameSafety

__all__ = ["AudioVAD", "FrameSafety"]
