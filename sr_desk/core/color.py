"""Colour lock: keep a result's low frequencies on the input's.

Generative upscalers drift in colour and tone (a face a shade warmer, a sky
a little darker). The lock compares the result and the input at a coarse
scale and adds the difference back, smoothly upsampled: colours and tones
follow the input, while detail finer than ``coarseness`` input pixels, which
is what the method adds, is untouched.
"""

from __future__ import annotations

import numpy as np

from sr_desk.core.resize import Filter, resize

__all__ = ["color_lock"]


def color_lock(result: np.ndarray, source: np.ndarray, coarseness: int = 4) -> np.ndarray:
    """``result`` (H x W x C) corrected so that, seen ``coarseness`` times coarser than ``source``, it equals it."""
    if result.ndim != source.ndim or result.shape[2:] != source.shape[2:]:
        raise ValueError(f"shapes do not match: result {result.shape}, source {source.shape}")
    out_size = (result.shape[1], result.shape[0])
    coarse = (max(1, round(source.shape[1] / coarseness)), max(1, round(source.shape[0] / coarseness)))
    drift = resize(source, coarse, Filter.BICUBIC) - resize(result, coarse, Filter.BICUBIC)
    return (result + resize(drift, out_size, Filter.BICUBIC)).astype(np.float32)
