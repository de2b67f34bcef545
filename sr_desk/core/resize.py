"""Classic resampling of float images, without 8-bit quantisation.

Every channel goes through Pillow in mode ``"F"`` (32-bit float), so a resize
keeps full precision and values outside [0, 1] (bicubic and Lanczos
overshoot) survive until the caller clips on write. Pillow's bicubic is
Keys a=-0.5 and widens its kernel when downscaling (antialiasing), which is
what MATLAB's ``imresize`` does and what super-resolution papers compare
against.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from PIL import Image

__all__ = ["Filter", "resize", "scaled_size", "fit_within", "clip01"]


class Filter(str, Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    LANCZOS = "lanczos"


_RESAMPLE: dict[Filter, Image.Resampling] = {
    Filter.NEAREST: Image.Resampling.NEAREST,
    Filter.BILINEAR: Image.Resampling.BILINEAR,
    Filter.BICUBIC: Image.Resampling.BICUBIC,
    Filter.LANCZOS: Image.Resampling.LANCZOS,
}


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(size[0]), int(size[1]))
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive (width, height), got {size!r}")
    return w, h


def resize(image: np.ndarray, size: tuple[int, int], filter: Filter = Filter.BICUBIC) -> np.ndarray:
    """Resize an H x W or H x W x C float image to ``size`` = (width, height).

    The result is float32, C-contiguous and NOT clipped.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C image, got shape {image.shape}")
    w, h = _check_size(size)
    resample = _RESAMPLE[Filter(filter)]
    if (w, h) == (image.shape[1], image.shape[0]):
        return np.array(image, dtype=np.float32, order="C", copy=True)

    def one(channel: np.ndarray) -> np.ndarray:
        src = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))
        return np.asarray(src.resize((w, h), resample), dtype=np.float32)

    if image.ndim == 2:
        return np.array(one(image), dtype=np.float32, order="C", copy=True)
    out = np.empty((h, w, image.shape[2]), dtype=np.float32)
    for c in range(image.shape[2]):
        out[:, :, c] = one(image[:, :, c])
    return out


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The (width, height) of ``size`` scaled by ``scale``, never below 1 px."""
    w, h = size
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_within(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """Largest size with the aspect ratio of ``size`` that fits inside ``box``.

    Scales up as well as down. Integer arithmetic, so the limiting side equals
    the box exactly and the other side never exceeds it.
    """
    w, h = _check_size(size)
    bw, bh = _check_size(box)
    if bw * h <= bh * w:  # width is the limit
        other = (2 * h * bw + w) // (2 * w)  # round(h * bw / w), half up
        return bw, min(bh, max(1, other))
    other = (2 * w * bh + h) // (2 * h)
    return min(bw, max(1, other)), bh


def clip01(image: np.ndarray) -> np.ndarray:
    """A float32 copy of ``image`` clipped to [0, 1]."""
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
