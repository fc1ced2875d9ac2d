"""Image operations the components share, in numpy only (no OpenCV, no Pillow)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelmanager.errors import ConfigurationInvalid

__all__ = ["resize_bilinear", "rgb_frames"]


def rgb_frames(value: Any, component: str) -> NDArray[np.uint8]:
    """``value`` as uint8 RGB frames [N, H, W, 3], or the error naming what it is instead."""
    frames = np.asarray(value)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigurationInvalid(
            f"{component} needs uint8 RGB frames [N, H, W, 3], "
            f"got {frames.dtype} {list(frames.shape)}"
        )
    return frames


def resize_bilinear(frame: NDArray[np.uint8], height: int, width: int) -> NDArray[np.float32]:
    """Bilinear resize of an [H, W, C] image, numpy only, without antialiasing.

    Pixel centres are aligned (``align_corners=False``, the convention of
    OpenCV's ``INTER_LINEAR`` and PIL's upscaling): the source coordinate of
    output pixel ``i`` is ``(i + 0.5) * in / out - 0.5``, clamped to the image.
    """
    src = frame.astype(np.float32)
    in_h, in_w = src.shape[:2]

    def taps(
        n_out: int, n_in: int
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
        pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0.0, n_in - 1)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, wy = taps(height, in_h)
    x0, x1, wx = taps(width, in_w)
    rows = src[y0] * (1.0 - wy)[:, None, None] + src[y1] * wy[:, None, None]
    out = rows[:, x0] * (1.0 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    return out.astype(np.float32)
