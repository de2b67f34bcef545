"""Seamless cloning: a donor's content inside a selection, its shading and colour meeting the base's at the edge.

Gradient-domain (Poisson) blending (Pérez, Gangnet and Blake, 2003): inside
the selection the result keeps the donor's gradients while its values match
the base on the selection's boundary. Written as ``donor + m``, the
correction ``m`` is the harmonic membrane (``laplace(m) = 0`` inside) that
equals ``base - donor`` on the region's boundary, which is what is solved here.
The membrane is smooth by construction, so it is solved on a grid of at most
``max_side`` pixels and enlarged: a 2,000 px selection costs what a 256 px
one does. The boundary values are first blurred a little: the membrane is
there to carry shading and colour, not the base's pixel noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve

from sr_desk.core.masks import mask_bbox

__all__ = ["membrane", "poisson_blend"]

#: Largest side of the grid the membrane is solved on.
MAX_SIDE = 256
#: Blur (in result pixels) of ``base - donor`` before it becomes the boundary condition.
BOUNDARY_BLUR = 2.0


def _solve_laplace(values: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """``values`` with its ``unknown`` pixels replaced by the harmonic fill of their neighbours (per channel)."""
    h, w = unknown.shape
    unknown = unknown.copy()
    unknown[0, :] = unknown[-1, :] = unknown[:, 0] = unknown[:, -1] = False
    count = int(unknown.sum())
    if count == 0:
        return values.astype(np.float64)
    index = -np.ones((h, w), dtype=np.int64)
    index[unknown] = np.arange(count)
    ys, xs = np.nonzero(unknown)
    rows, cols, data = [np.arange(count)], [np.arange(count)], [np.full(count, 4.0)]
    rhs = np.zeros((count, values.shape[2]))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        neighbour = index[ny, nx]
        known = neighbour < 0
        rows.append(np.arange(count)[~known])
        cols.append(neighbour[~known])
        data.append(np.full(int((~known).sum()), -1.0))
        rhs[known] += values[ny[known], nx[known]]
    matrix = sparse.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(count, count))
    solution = spsolve(matrix.tocsc(), rhs)
    out = values.astype(np.float64).copy()
    out[unknown] = solution.reshape(count, -1)
    return out


def _blur_within(values: np.ndarray, where: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur that averages only pixels in ``where`` (normalised convolution)."""
    weight = ndimage.gaussian_filter(where.astype(np.float64), sigma, mode="nearest")
    blurred = ndimage.gaussian_filter(values * where[..., None], (sigma, sigma, 0), mode="nearest")
    return blurred / np.maximum(weight, 1e-6)[..., None]


def membrane(base: np.ndarray, donor: np.ndarray, inside: np.ndarray, max_side: int = MAX_SIDE,
             max_difference: float | None = None) -> np.ndarray:
    """The smooth correction ``m`` (float32, the shape of ``base``): ``donor + m`` meets ``base`` at ``inside``'s edge.

    The boundary condition is ``base - donor`` on the region's own outermost
    pixels (blurred among the region's pixels only): the donor may end right
    at the selection's edge, where the pixels outside hold no donor at all.
    ``max_difference`` limits that condition: where the edge crosses other
    content (a face's edge over hair), the difference is not shading and
    would spread a dark or bright cast inwards.
    """
    difference = _blur_within(base.astype(np.float64) - donor.astype(np.float64), inside, BOUNDARY_BLUR)
    if max_difference is not None:
        difference = np.clip(difference, -max_difference, max_difference)
    h, w = inside.shape
    factor = min(1.0, max_side / max(h, w))
    grid_inside = inside if factor == 1.0 else ndimage.zoom(inside.astype(np.float32), factor, order=1) > 0.5
    grid_values = difference if factor == 1.0 else ndimage.zoom(difference, (factor, factor, 1), order=1,
                                                                 mode="nearest")
    unknown = ndimage.binary_erosion(grid_inside)
    solved = _solve_laplace(grid_values, unknown)
    if factor < 1.0:
        zoom = (h / solved.shape[0], w / solved.shape[1], 1)
        solved = ndimage.zoom(solved, zoom, order=1, mode="nearest")[:h, :w]
    return solved.astype(np.float32)


def poisson_blend(base: np.ndarray, donor: np.ndarray, mask: np.ndarray, max_side: int = MAX_SIDE,
                  max_difference: float | None = None) -> np.ndarray:
    """``donor`` cloned seamlessly into ``base`` where ``mask`` > 0.5 (float32 ``H x W x 3``; both the same size).

    Outside that region the base is returned unchanged; composite the result
    with the (feathered) mask to finish.
    """
    if base.shape != donor.shape or base.shape[:2] != mask.shape:
        raise ValueError(f"base {base.shape}, donor {donor.shape} and mask {mask.shape} must share a size")
    inside = mask > 0.5
    box = mask_bbox(mask, threshold=0.5)
    result = base.astype(np.float32).copy()
    if box is None:
        return result
    x, y, w, h = box
    margin = int(2 * BOUNDARY_BLUR) + 2
    height, width = mask.shape
    y0, y1 = max(0, y - margin), min(height, y + h + margin)
    x0, x1 = max(0, x - margin), min(width, x + w + margin)
    window = (slice(y0, y1), slice(x0, x1))
    m = membrane(base[window], donor[window], inside[window], max_side, max_difference)
    cloned = np.clip(donor[window] + m, 0.0, 1.0)
    result[window] = np.where(inside[window][..., None], cloned, base[window])
    return result
