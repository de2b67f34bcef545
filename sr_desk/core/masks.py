"""Selection masks: float32 H x W arrays in [0, 1], 1 = selected.

The guarantees here are exact on purpose: a pixel outside a (feathered)
selection must come back bit-identical after an edit, or "upscale the
selection" would subtly change the whole image.
"""

from __future__ import annotations

import numpy as np

from .resize import Filter, clip01, resize

__all__ = ["MAX_OUTLINE_SEGMENTS", "rect_mask", "feather_mask", "mask_bbox", "composite", "outline_polygons", "resize_mask"]

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


# -- the outline the canvas draws ------------------------------------------------------------

#: A more ragged outline is traced at a coarser resolution.
MAX_OUTLINE_SEGMENTS = 60_000


def outline_polygons(
    mask: np.ndarray | None, threshold: float = 0.5, max_segments: int = MAX_OUTLINE_SEGMENTS
) -> list[list[tuple[int, int]]]:
    """The ``threshold`` contour of a selection mask as closed polygons of vertices on the pixel grid (image px).

    Each polygon runs clockwise on screen around selected pixels (holes the
    other way), so even-odd filling draws the selection. A mask that never
    reaches the threshold (a small, heavily feathered selection) is outlined
    where it is above zero instead, so a selection is never invisible. Only
    the mask's bounding box is scanned. A mask so ragged that its outline
    would have more than ``max_segments`` runs (noise, say) is outlined at
    half resolution, or a quarter, ... so drawing stays fast.
    """
    if mask is None:
        return []
    inside = mask >= threshold
    if not inside.any():
        inside = mask > 0
        if not inside.any():
            return []
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = inside[y0:y1, x0:x1]
    factor = 1
    # Edge pixels bound the number of runs from above and cost little to count.
    while min(crop.shape) > 1 and _edge_count(crop) > 4 * max_segments:
        crop = _halve(crop)
        factor *= 2
    segments = _outline_segments(crop)
    while len(segments) > max_segments and min(crop.shape) > 1:
        crop = _halve(crop)
        factor *= 2
        segments = _outline_segments(crop)
    if factor > 1:
        segments *= factor
        # The coarse grid can overshoot the bounding box by up to factor - 1 px.
        np.minimum(segments[:, (0, 2)], x1 - x0, out=segments[:, (0, 2)])
        np.minimum(segments[:, (1, 3)], y1 - y0, out=segments[:, (1, 3)])
    segments[:, (0, 2)] += x0
    segments[:, (1, 3)] += y0
    return _link(segments.tolist())


def _runs(edge: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, start, end)`` of every horizontal run of True in a 2-D bool array."""
    rows, cols = np.nonzero(edge)
    if rows.size == 0:
        return rows, cols, cols
    flat = rows.astype(np.int64) * (edge.shape[1] + 1) + cols
    breaks = np.flatnonzero(np.diff(flat) != 1)
    first = np.concatenate(([0], breaks + 1))
    last = np.concatenate((breaks, [flat.size - 1]))
    return rows[first], cols[first], cols[last] + 1


def _outline_segments(inside: np.ndarray) -> np.ndarray:
    """The boundary of a bool mask as (x0, y0, x1, y1) runs on the pixel grid.

    Runs are oriented so that each closed boundary is a chain of runs (end of
    one = start of the next), clockwise on screen around selected pixels.
    """
    h, w = inside.shape
    padded = np.zeros((h + 2, w + 2), dtype=bool)
    padded[1:-1, 1:-1] = inside
    parts = []
    above, below = padded[:-1, 1:-1], padded[1:, 1:-1]
    y, x0, x1 = _runs(below > above)  # top edges, walked to the right
    parts.append(np.stack([x0, y, x1, y], axis=1))
    y, x0, x1 = _runs(above > below)  # bottom edges, walked to the left
    parts.append(np.stack([x1, y, x0, y], axis=1))
    columns = np.ascontiguousarray(padded.T)  # rows of this are image columns
    left, right = columns[:-1, 1:-1], columns[1:, 1:-1]
    x, y0, y1 = _runs(right > left)  # left edges, walked up
    parts.append(np.stack([x, y1, x, y0], axis=1))
    x, y0, y1 = _runs(left > right)  # right edges, walked down
    parts.append(np.stack([x, y0, x, y1], axis=1))
    return np.concatenate(parts).astype(np.int64)


def _link(segments: list[list[int]]) -> list[list[tuple[int, int]]]:
    """Chain oriented runs into closed loops of vertices."""
    starts: dict[tuple[int, int], list[int]] = {}
    for i, (x0, y0, _x1, _y1) in enumerate(segments):
        starts.setdefault((x0, y0), []).append(i)
    used = bytearray(len(segments))
    loops = []
    for first in range(len(segments)):
        if used[first]:
            continue
        loop = []
        j = first
        while not used[j]:
            used[j] = 1
            x0, y0, x1, y1 = segments[j]
            loop.append((x0, y0))
            following = starts.get((x1, y1))
            if not following:
                break
            j = following.pop()
        loops.append(loop)
    return loops


def _halve(inside: np.ndarray) -> np.ndarray:
    """A mask at half resolution; a coarse pixel is in when any of its four is."""
    h, w = inside.shape
    padded = np.zeros((h + h % 2, w + w % 2), dtype=bool)
    padded[:h, :w] = inside
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).any(axis=(1, 3))


def _edge_count(inside: np.ndarray) -> int:
    return int(np.count_nonzero(inside[:, 1:] != inside[:, :-1]) + np.count_nonzero(inside[1:] != inside[:-1]))
