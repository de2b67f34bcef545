"""How far an upscaled result departs from its input, for the compare view.

A faithful super-resolution result, shrunk back to the input's size, should
give the input again: diffusion methods can invent detail, but detail that
changes the low-resolution picture is a hallucination the user should see.
Shrinking is the degradation model itself, MATLAB's bicubic ``imresize``
(:mod:`sr_desk.core.matlab_resize`), clipped to [0, 1] as a saved result is:
the LR-PSNR here is the one ``bench/quality.py`` reports for the same pair.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sr_desk.core.matlab_resize import matlab_resize
from sr_desk.core.resize import Filter, resize

__all__ = ["departure_map", "downscale_to", "heat_map", "lr_psnr", "model_departure_map"]

FloatArray = npt.NDArray[np.float32]

# Ramp stops (t, r, g, b, alpha) for departure / vmax: luminance falls
# monotonically from yellow to red, so "more red" always reads as "worse".
_RAMP = np.array(
    [
        (0.00, 1.00, 1.00, 0.00, 0.00),
        (0.05, 1.00, 1.00, 0.00, 0.00),  # below 5% of vmax: invisible
        (0.40, 1.00, 0.85, 0.00, 0.55),
        (0.70, 1.00, 0.45, 0.00, 0.75),
        (1.00, 0.85, 0.00, 0.00, 0.85),
    ],
    dtype=np.float32,
)


#: A mean squared error below float32's resolution of [0, 1]: the shrunk result is the input, up to the rounding
#: of the resize's own arithmetic.
EQUAL_MSE = (float(np.finfo(np.float32).eps) / 2) ** 2


def downscale_to(result_rgb: FloatArray, size: tuple[int, int]) -> FloatArray:
    """``result_rgb`` clipped to [0, 1] and shrunk to ``size`` = (width, height) as the degradation does."""
    return np.clip(matlab_resize(np.clip(result_rgb, 0.0, 1.0), size), 0.0, 1.0)


def lr_psnr(result_rgb: FloatArray, input_rgb: FloatArray) -> float:
    """PSNR (dB, data range 1) of the downscaled result against the input; inf when equal."""
    diff = _lr_difference(result_rgb, input_rgb)
    mse = float(np.mean(np.square(diff, dtype=np.float64)))
    if mse <= EQUAL_MSE:
        return math.inf
    return 10.0 * math.log10(1.0 / mse)


def departure_map(result_rgb: FloatArray, input_rgb: FloatArray) -> FloatArray:
    """Per input pixel, the mean absolute difference over channels (float32 H_in x W_in)."""
    diff = _lr_difference(result_rgb, input_rgb)
    return np.abs(diff).mean(axis=2, dtype=np.float32)


def model_departure_map(result_rgb: FloatArray, input_rgb: FloatArray) -> FloatArray:
    """How much further than a bicubic enlargement the result departs from the input, per input pixel.

    A bicubic enlargement shrunk back is not the input either (it blurs
    edges), so the plain :func:`departure_map` lights up wherever there are
    edges, also where no model ran (outside a selection, which is bicubic).
    Measured against bicubic's own departure, only what a method changed shows.
    """
    size = (result_rgb.shape[1], result_rgb.shape[0])
    plain = np.clip(resize(np.asarray(input_rgb, dtype=np.float32), size, Filter.BICUBIC), 0.0, 1.0)
    excess = departure_map(result_rgb, input_rgb) - departure_map(plain, input_rgb)
    return np.maximum(excess, np.float32(0.0))


def heat_map(departure: FloatArray, size: tuple[int, int], vmax: float = 0.1) -> FloatArray:
    """An RGBA float32 overlay of ``departure`` at ``size`` = (width, height).

    Transparent where the result agrees with the input, through yellow to
    red at ``vmax`` and above. Enlarged with nearest neighbour so each input
    pixel shows as a block the size it covers in the result.
    """
    if departure.ndim != 2:
        raise ValueError(f"expected an H x W departure map, got shape {departure.shape}")
    if not vmax > 0:
        raise ValueError(f"vmax must be positive, got {vmax}")
    t = np.clip(np.nan_to_num(departure / np.float32(vmax), nan=1.0), 0.0, 1.0)
    small = np.stack([np.interp(t, _RAMP[:, 0], _RAMP[:, c]) for c in range(1, 5)], axis=-1)
    rows = _nearest_index(departure.shape[0], int(size[1]))
    cols = _nearest_index(departure.shape[1], int(size[0]))
    return np.ascontiguousarray(small.astype(np.float32)[rows][:, cols])


def _lr_difference(result_rgb: FloatArray, input_rgb: FloatArray) -> npt.NDArray[np.float32]:
    if input_rgb.ndim != 3 or result_rgb.ndim != 3 or input_rgb.shape[2] != result_rgb.shape[2]:
        raise ValueError(
            f"expected two H x W x C images, got {result_rgb.shape} and {input_rgb.shape}"
        )
    down = downscale_to(result_rgb, (input_rgb.shape[1], input_rgb.shape[0]))
    return down - np.asarray(input_rgb, dtype=np.float32)


def _nearest_index(n_in: int, n_out: int) -> npt.NDArray[np.intp]:
    """Source index of each output pixel for a nearest-neighbour resize (pixel centres)."""
    if n_out < 1:
        raise ValueError(f"size must be positive, got {n_out}")
    idx = ((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    return np.minimum(idx, n_in - 1)
