"""Selection masks: float32 H x W arrays in [0, 1], 1 = selected.

The guarantees here are exact on purpose: a pixel outside a (feathered)
selection must come back bit-identical after an edit, or "upscale the
selection" would subtly change the whole image.
"""

from __future__ import annotations

import numpy as np

from .resize import Filter, clip01, resize

__all__ = ["rect_mask", "feather_mask", "mask_bbox", "composite", "resize_mask"]

_TINY = 1e-7


def rect_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A (width, height) mask with the rectangle ``box`` = (x, y, w, h) set to 1, clipped to the image."""
    width, height = size
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"rectangle {box!r} does not intersect a {width}x{height} image")
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def _box_blur(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over a 2r+1 window along ``axis`` (float64, edge values replicated)."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r + 1, r)  # one extra leading value becomes the cumsum's zero
    padded = np.pad(a, pad, mode="edge")
    if axis == 0:
        padded[0] = 0.0
        cums = np.cumsum(padded, axis=0)
        return (cums[2 * r + 1 :] - cums[: -2 * r - 1]) / (2 * r + 1)
    padded[:, 0] = 0.0
    cums = np.cumsum(padded, axis=1)
    return (cums[:, 2 * r + 1 :] - cums[:, : -2 * r - 1]) / (2 * r + 1)


def feather_mask(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften the mask's edge over about ``radius`` px each side (≈ Gaussian, sigma ≈ radius / 3).

    Three box blurs whose half-widths sum to ``R = round(radius)``, so the
    support is finite: a pixel more than R px (Chebyshev distance) from every
    selected pixel stays exactly 0, and one more than R px from every
    unselected pixel of a 0/1 mask stays exactly 1. Beyond the image the
    edge is replicated, so a selection touching the border does not fade there.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected an H x W mask, got shape {mask.shape}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    r_total = int(round(radius))
    src = np.asarray(mask, dtype=np.float32)
    if r_total == 0:
        return src.copy()
    bbox = mask_bbox(src)
    result = np.zeros(src.shape, dtype=np.float32)
    if bbox is None:
        return result

    # Only the bounding box plus 2R can matter (R of blur spreading into R
    # of output): blur that window alone. Where it is cut short of the image
    # edge its own edge values are 0, so replicating them is exact.
    height, width = src.shape
    x, y, w, h = bbox
    y0, y1 = max(0, y - 2 * r_total), min(height, y + h + 2 * r_total)
    x0, x1 = max(0, x - 2 * r_total), min(width, x + w + 2 * r_total)
    a = src[y0:y1, x0:x1].astype(np.float64)
    radii = [r_total // 3 + (1 if i < r_total % 3 else 0) for i in range(3)]
    for r in radii:
        if r:
            a = _box_blur(a, r, axis=0)
            a = _box_blur(a, r, axis=1)
    a[a < _TINY] = 0.0  # cumsum differences can leave ~1e-17 residue
    result[y0:y1, x0:x1] = np.clip(a, 0.0, 1.0)
    return result


def mask_bbox(mask: np.ndarray, threshold: float = 0.0) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the pixels above ``threshold``, or None if there are none."""
    hit = mask > threshold
    rows = np.flatnonzero(hit.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(hit.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    return x0, y0, x1 - x0, y1 - y0


def composite(base: np.ndarray, overlay: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``base * (1 - m) + overlay * m``; exactly ``base`` where m == 0, exactly ``overlay`` where m == 1."""
    if base.shape != overlay.shape:
        raise ValueError(f"base {base.shape} and overlay {overlay.shape} differ in shape")
    if mask.shape != base.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {base.shape[:2]}")
    m = mask[..., None] if base.ndim == 3 else mask
    blended = base * (1 - m) + overlay * m
    return np.where(m == 0, base, np.where(m == 1, overlay, blended))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a mask to (width, height), kept in [0, 1]."""
    if mask.ndim != 2:
        raise ValueError(f"expected an H x W mask, got shape {mask.shape}")
    return clip01(resize(mask, size, Filter.BILINEAR))
