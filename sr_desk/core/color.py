"""Colour corrections: the colour lock for results, colour matching for pasted content.

Colour lock: keep a result's low frequencies on the input's.

Generative upscalers drift in colour and tone (a face a shade warmer, a sky
a little darker). The lock compares the result and the input at a coarse
scale and adds the difference back, smoothly upsampled: colours and tones
follow the input, while detail finer than ``coarseness`` input pixels, which
is what the method adds, is untouched.
"""

from __future__ import annotations

import numpy as np

from sr_desk.core.resize import Filter, resize

__all__ = ["color_lock", "match_colors"]


def color_lock(result: np.ndarray, source: np.ndarray, coarseness: int = 4) -> np.ndarray:
    """``result`` (H x W x C) corrected so that, seen ``coarseness`` times coarser than ``source``, it equals it."""
    if result.ndim != source.ndim or result.shape[2:] != source.shape[2:]:
        raise ValueError(f"shapes do not match: result {result.shape}, source {source.shape}")
    out_size = (result.shape[1], result.shape[0])
    coarse = (max(1, round(source.shape[1] / coarseness)), max(1, round(source.shape[0] / coarseness)))
    drift = resize(source, coarse, Filter.BICUBIC) - resize(result, coarse, Filter.BICUBIC)
    return (result + resize(drift, out_size, Filter.BICUBIC)).astype(np.float32)


def match_colors(content: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``content`` with each channel's mean and spread inside ``mask`` moved to ``reference``'s there.

    A face pasted from another photo carries that photo's light; matching
    first- and second-order statistics per channel (Reinhard et al., 2001,
    here in RGB) makes it sit in the new one. Pixels outside the mask are
    corrected too (the caller composites), weighted statistics follow the
    mask's soft edge. The result is clipped to [0, 1].
    """
    if content.shape != reference.shape or mask.shape != content.shape[:2]:
        raise ValueError(f"shapes do not match: content {content.shape}, reference {reference.shape}, mask {mask.shape}")
    weights = mask.astype(np.float64)[..., None]
    total = float(weights.sum())
    if total <= 0:
        return content.copy()

    def stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = (image * weights).sum(axis=(0, 1)) / total
        spread = np.sqrt(((image - mean) ** 2 * weights).sum(axis=(0, 1)) / total)
        return mean, spread

    content_mean, content_spread = stats(content)
    reference_mean, reference_spread = stats(reference)
    gain = reference_spread / np.maximum(content_spread, 1e-3)
    matched = (content - content_mean) * gain + reference_mean
    return np.clip(matched, 0.0, 1.0).astype(np.float32)
