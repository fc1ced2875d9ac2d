"""Components of the DataProcessor that run real models through the Runner."""

from __future__ import annotations

from modelmanager.components.audio_vad import AudioVAD
from modelmanager.components.frame_safety import FrameSafety
from modelmanager.components.text_ocr import TextOCR

__all__ = ["REGISTRY", "AudioVAD", "FrameSafety", "TextOCR", "batch_limits"]


REGISTRY: dict[str, type[AudioVAD] | type[FrameSafety] | type[TextOCR]] = {
    AudioVAD.name: AudioVAD,
    TextOCR.name: TextOCR,
    FrameSafety.name: FrameSafety,
}
"""The components ``modelmanager run`` knows, by the name a profile maps them under."""


def batch_limits() -> dict[str, int]:
    """Each known component's own largest batch (``max_batch``), what the planner caps at."""
    return {name: cls.max_batch for name, cls in REGISTRY.items()}
