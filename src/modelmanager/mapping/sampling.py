"""The sampling policy: which frames of a video the components see, and at what size.

A policy is a section of the profile (``sampling:``, :attr:`ResolvedMapping.sampling`),
or given to the API::

    sampling:
      version: "2"          # the policy's own label, chosen by whoever edits it
      fps: 1                # frames per second taken from the video (by timestamp)
      max_frames: 64        # at most this many, from the start
      width: 160            # frames are scaled to width x height (both, or neither:
      height: 96            #   the video's own size)

Its :attr:`SamplingPolicy.key_version` is the run context's ``sampling_policy_version``
(R-SIG-3), so every cache key depends on it: the label *and* a digest of the parameters.
Changing a parameter recomputes even if the label was not bumped; changing nothing
(reordering keys, ``1`` for ``1.0``) keeps every key.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelmanager.errors import InvalidModelSpec
from modelmanager.mapping.canonical import canonical_json, sha256_tagged
from modelmanager.mapping.problems import reason_of
from modelmanager.mapping.versions import PinnedVersion

__all__ = ["AUDIO_RATE", "DEFAULT_POLICY", "SamplingPolicy", "parse_policy"]

AUDIO_RATE = 16_000
"""Every audio track is decoded to mono float32 at this rate (Hz): what the audio models take."""

_DIGEST_CHARS = 12


class SamplingPolicy(BaseModel):
    """Which frames of a video are decoded for the components (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: PinnedVersion = "1"
    fps: float = Field(default=1.0, ge=0.001, le=240)
    max_frames: int = Field(default=64, ge=1, le=100_000)
    width: int | None = Field(default=None, ge=8, le=8192)
    height: int | None = Field(default=None, ge=8, le=8192)

    @model_validator(mode="after")
    def _both_sizes_or_neither(self) -> Self:
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither (the video's own size)")
        return self

    @property
    def parameters(self) -> dict[str, Any]:
        """What decides the frames, in canonical JSON's terms (fps in millihertz: no float)."""
        return {
            "fps_mhz": round(self.fps * 1000),
            "max_frames": self.max_frames,
            "size": None if self.width is None else [self.width, self.height],
            "audio_rate": AUDIO_RATE,
        }

    @property
    def key_version(self) -> str:
        """``<version>+<digest of the parameters>``: the run context's sampling_policy_version."""
        digest = sha256_tagged(canonical_json(self.parameters)).removeprefix("sha256:")
        return f"{self.version}+{digest[:_DIGEST_CHARS]}"


DEFAULT_POLICY = SamplingPolicy()


def parse_policy(data: Any, *, source: str = "sampling") -> SamplingPolicy:
    """A policy from a profile's ``sampling:`` section (None: the default policy).

    Raises:
        InvalidModelSpec: a field that does not fit, named with ``source``.
    """
    if data is None:
        return DEFAULT_POLICY
    try:
        return SamplingPolicy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(["sampling", *(str(part) for part in first["loc"])])
        raise InvalidModelSpec(
            f"{source}: {field}: {reason_of(first)}", source=source, field=field
        ) from None
