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

__all__ = ["color_lock", "match_colors", "match_tone"]


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
    if float(mask.sum()) <= 0:
        return content.copy()
    content_mean, content_spread = _weighted_stats(content, mask)
    reference_mean, reference_spread = _weighted_stats(reference, mask)
    gain = reference_spread / np.maximum(content_spread, 1e-3)
    matched = (content - content_mean) * gain + reference_mean
    return np.clip(matched, 0.0, 1.0).astype(np.float32)


#: The most :func:`match_tone` stretches a channel's spread: a grey donor's colour channels are flat, and
#: stretching their faint noise to a face's spread of skin colour would paint it in blotches.
MAX_TONE_GAIN = 2.0


def match_tone(content: np.ndarray, reference: np.ndarray, content_mask: np.ndarray,
               reference_mask: np.ndarray) -> np.ndarray:
    """``content`` moved into ``reference``'s light, in CIELAB (after Reinhard et al., 2001): its mean lightness
    and its colour's mean and spread inside ``content_mask`` become ``reference``'s inside ``reference_mask``.

    For a face dropped into another photo: lightness and colour are separate
    channels in Lab, so a black-and-white or darker donor takes the base
    face's skin colour and brightness. The lightness keeps its own spread
    (the contrast of eyes, brows and mouth is the donor's features, not its
    light); the colour's spread gain is limited to :data:`MAX_TONE_GAIN`.
    """
    import cv2

    if content.shape != reference.shape or content_mask.shape != content.shape[:2] \
            or reference_mask.shape != content.shape[:2]:
        raise ValueError(f"shapes do not match: content {content.shape}, reference {reference.shape}, "
                         f"masks {content_mask.shape} and {reference_mask.shape}")
    if content_mask.sum() <= 0 or reference_mask.sum() <= 0:
        return content.copy()
    content_lab, reference_lab = (cv2.cvtColor(np.ascontiguousarray(image[..., :3], np.float32), cv2.COLOR_RGB2Lab)
                                  for image in (content, reference))
    content_mean, content_spread = _weighted_stats(content_lab, content_mask)
    reference_mean, reference_spread = _weighted_stats(reference_lab, reference_mask)
    gain = np.clip(reference_spread / np.maximum(content_spread, 1e-3), 1 / MAX_TONE_GAIN, MAX_TONE_GAIN)
    gain[0] = 1.0
    lab = (content_lab - content_mean) * gain + reference_mean
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    matched = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)  # outside sRGB: clipped below
    return np.clip(matched, 0.0, 1.0).astype(np.float32)


def _weighted_stats(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    weights = mask.astype(np.float64)[..., None]
    total = float(weights.sum())
    mean = (image * weights).sum(axis=(0, 1)) / total
    spread = np.sqrt(((image - mean) ** 2 * weights).sum(axis=(0, 1)) / total)
    return mean, spread
