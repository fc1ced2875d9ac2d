"""The version field type shared by the profile's sections (mapping entries, sampling)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["PinnedVersion"]


def _version_text(value: Any) -> Any:
    # YAML turns `model_version: 3` into an int; the same version either way.
    # Floats and bools are refused: `1.10` would silently become "1.1".
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"{value!r} is a number with a decimal point; quote it as a string")
    return value


PinnedVersion = Annotated[str, BeforeValidator(_version_text)]
"""A version as text: YAML's ``3`` is ``"3"``; ``1.10`` (a float) is refused."""
