"""MATLAB's bicubic ``imresize``, in numpy: the taps every sr-desk resize of the degradation model uses.

The LR images sr-desk trains on and measures with are made by MATLAB's
``imresize``; LR-PSNR takes a result back down the same way, in the editor's
compare view and in ``bench/quality.py`` alike, so both report one number for
one pair. ``sr_desk.diffusion.imresize`` applies these same taps to torch
tensors (on the GPU, inside training).

What MATLAB does, per axis:

* output length ``ceil(in * scale)``;
* output pixel ``x`` (1-based) samples input position
  ``u = x / scale + 0.5 * (1 - 1 / scale)`` (pixel centres aligned);
* Keys cubic kernel, a = -0.5, support 4; when shrinking with antialiasing
  the kernel is stretched to ``h(t) = scale * cubic(scale * t)``, support ``4 / scale``;
* weights normalised to sum to one per output pixel;
* out-of-range taps mirrored symmetrically (``..., 2, 1 | 1, 2, ..., n | n, n-1, ...``);
* the axis with the smaller scale is resized first.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["contributions", "cubic", "matlab_resize", "output_size"]

#: Guards ceil() against float noise such as 10 * 0.1 = 1.0000000000000002.
_SIZE_EPS = 1e-9


def cubic(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``); zero for ``|t| >= 2``."""
    at = np.abs(t)
    at2 = at * at
    at3 = at2 * at
    inner = (1.5 * at3 - 2.5 * at2 + 1.0) * (at <= 1)
    outer = (-0.5 * at3 + 2.5 * at2 - 4.0 * at + 2.0) * ((at > 1) & (at <= 2))
    return inner + outer


def output_size(in_size: int, scale: float) -> int:
    """MATLAB's output length for one axis: ``ceil(in_size * scale)``."""
    return max(1, math.ceil(in_size * scale - _SIZE_EPS))


@lru_cache(maxsize=64)
def contributions(
    in_len: int, out_len: int, scale: float, antialias: bool = True
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Input indices (0-based) and weights, each ``(out_len, taps)``, for one axis (read-only arrays)."""
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    shrink_aa = antialias and scale < 1.0
    width = 4.0 / scale if shrink_aa else 4.0
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, may be out of range
    dist = u[:, None] - idx
    weights = scale * cubic(scale * dist) if shrink_aa else cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric mirror, periodic with period 2n (so kernels wider than the image still work).
    m = np.remainder(idx.astype(np.int64) - 1, 2 * in_len)
    idx0 = np.where(m < in_len, m, 2 * in_len - 1 - m)
    # Drop tap columns that are zero for every output pixel (as MATLAB does): less to gather.
    keep = (weights != 0).any(axis=0)
    idx0, weights = np.ascontiguousarray(idx0[:, keep]), np.ascontiguousarray(weights[:, keep])
    idx0.flags.writeable = weights.flags.writeable = False  # cached: shared by every caller
    return idx0, weights


def matlab_resize(image: npt.ArrayLike, size: tuple[int, int], antialias: bool = True) -> npt.NDArray[np.float32]:
    """An H x W or H x W x C float image resized to ``size`` = (width, height) like MATLAB's bicubic ``imresize``.

    Each axis uses ``out / in`` as its scale, as MATLAB does for an explicit
    size. Float32 out, not clipped: bicubic overshoots, and callers decide
    when to clamp.
    """
    out = np.asarray(image, dtype=np.float32)
    if out.ndim not in (2, 3) or out.shape[0] < 1 or out.shape[1] < 1:
        raise ValueError(f"expected an H x W or H x W x C image, got shape {out.shape}")
    out_w, out_h = int(size[0]), int(size[1])
    if out_w < 1 or out_h < 1:
        raise ValueError(f"size must be positive (width, height), got {size!r}")
    axes = [(0, out_h, out_h / out.shape[0]), (1, out_w, out_w / out.shape[1])]
    axes.sort(key=lambda a: a[2])  # stable: height first on ties, like MATLAB
    for axis, out_len, scale in axes:
        if out_len != out.shape[axis] or scale != 1.0:
            out = _resize_axis(out, axis, out_len, scale, antialias)
    return np.ascontiguousarray(out, dtype=np.float32)


def _resize_axis(
    image: npt.NDArray[np.float32], axis: int, out_len: int, scale: float, antialias: bool
) -> npt.NDArray[np.float32]:
    """One axis as a banded sparse matrix product: each output row reads only its few taps, in compiled code."""
    matrix = _sparse_matrix(image.shape[axis], out_len, scale, antialias)
    moved = np.moveaxis(image, axis, 0)
    flat = np.ascontiguousarray(moved).reshape(moved.shape[0], -1)
    out = np.asarray(matrix @ flat, dtype=np.float32).reshape(out_len, *moved.shape[1:])
    return np.moveaxis(out, 0, axis)


@lru_cache(maxsize=16)
def _sparse_matrix(in_len: int, out_len: int, scale: float, antialias: bool) -> Any:
    """The axis's resize as an ``(out_len, in_len)`` float32 CSR matrix (mirrored taps summed into their column)."""
    from scipy.sparse import csr_matrix

    idx, weights = contributions(in_len, out_len, scale, antialias)
    rows = np.repeat(np.arange(out_len), idx.shape[1])
    matrix = csr_matrix((weights.ravel(), (rows, idx.ravel())), shape=(out_len, in_len))  # duplicates are summed
    return matrix.astype(np.float32)
