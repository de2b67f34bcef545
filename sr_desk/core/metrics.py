"""Image quality as SR papers measure it, once for the editor, the bench and the trainer (numpy).

* Y: the luma of ITU-R BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` computes it
  (``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1], over 255),
  the channel every SR paper's PSNR and SSIM use, with the scale's border
  cropped.
* detail: the mean gradient magnitude of a result's Y over the ground
  truth's. PSNR rewards blur; this says how much fine structure a result
  has: bicubic is about 0.5, the photo 1.0, above 1 is noise or invented
  texture.
* diversity: how much results of several seeds differ, per pixel.

LR-PSNR, the consistency of a result with its input, is
:func:`sr_desk.core.fidelity.lr_psnr`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Y_OFFSET", "Y_WEIGHTS", "crop_border", "detail_ratio", "diversity", "gradient_magnitude", "psnr_y",
           "quantize8", "rgb_to_y", "ssim_y", "to_unit"]

#: BT.601 luma from RGB in [0, 1], in 8-bit units: ``Y_OFFSET + Y_WEIGHTS . RGB`` lies in [16, 235].
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0

FloatArray = npt.NDArray[np.float64]


def to_unit(image: npt.ArrayLike) -> FloatArray:
    """An image as float64 in [0, 1]: uint8 divided by 255, floats as they are."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    return np.asarray(array, dtype=np.float64)


def quantize8(image: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Rounded to 8 bits (and clipped), as saving to PNG does; float32 in [0, 1]."""
    return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def rgb_to_y(image: npt.ArrayLike) -> FloatArray:
    """BT.601 luma of an RGB image in [0, 1] (or uint8), in [16/255, 235/255]."""
    rgb = to_unit(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {rgb.shape}")
    r, g, b = Y_WEIGHTS
    return (Y_OFFSET + r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]) / 255.0


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` without ``border`` pixels on each side (SR papers crop the scale's worth)."""
    if border <= 0:
        return image
    if image.shape[0] <= 2 * border or image.shape[1] <= 2 * border:
        raise ValueError(f"a {image.shape[1]}x{image.shape[0]} image is too small for a {border}-pixel border crop")
    return image[border:-border, border:-border]


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")


def _psnr(reference: FloatArray, test: FloatArray) -> float:
    """PSNR for data in [0, 1]; ``inf`` for identical images."""
    mse = float(np.mean(np.square(reference - test)))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def psnr_y(sr: npt.ArrayLike, hr: npt.ArrayLike, border: int) -> float:
    """PSNR (dB) on the BT.601 Y channel, ``border`` pixels cropped; ``inf`` when identical."""
    sr, hr = np.asarray(sr), np.asarray(hr)
    _check_pair(sr, hr)
    return _psnr(crop_border(rgb_to_y(hr), border), crop_border(rgb_to_y(sr), border))


def ssim_y(sr: npt.ArrayLike, hr: npt.ArrayLike, border: int) -> float:
    """SSIM on the BT.601 Y channel, ``border`` pixels cropped (Gaussian window, sigma 1.5, as Wang et al.).

    Needs scikit-image (the ``bench`` extra), imported here only.
    """
    from skimage.metrics import structural_similarity

    sr, hr = np.asarray(sr), np.asarray(hr)
    _check_pair(sr, hr)
    return float(structural_similarity(crop_border(rgb_to_y(hr), border), crop_border(rgb_to_y(sr), border),
                                       data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def gradient_magnitude(y: np.ndarray) -> float:
    """Mean length of the central-difference gradient of a 2-D image (pixels without both neighbours skipped)."""
    if y.ndim != 2 or min(y.shape) < 3:
        raise ValueError(f"expected a 2-D image of at least 3x3, got shape {y.shape}")
    gy = (y[2:, 1:-1] - y[:-2, 1:-1]) / 2
    gx = (y[1:-1, 2:] - y[1:-1, :-2]) / 2
    return float(np.mean(np.hypot(gx, gy)))


def detail_ratio(sr: npt.ArrayLike, hr: npt.ArrayLike, border: int) -> float:
    """Mean gradient magnitude on Y of ``sr`` over that of ``hr`` (``nan`` for a flat ``hr``)."""
    sr, hr = np.asarray(sr), np.asarray(hr)
    _check_pair(sr, hr)
    reference = gradient_magnitude(crop_border(rgb_to_y(hr), border))
    if reference == 0:
        return math.nan
    return gradient_magnitude(crop_border(rgb_to_y(sr), border)) / reference


def diversity(outputs: Sequence[npt.ArrayLike]) -> float:
    """Per-pixel standard deviation over the outputs of several seeds, in 0-255 units, averaged; 0 for one."""
    if len(outputs) < 2:
        return 0.0
    stack = np.stack([to_unit(o) for o in outputs]) * 255.0
    return float(stack.std(axis=0).mean())
