"""The metrics of evaluation (sr_desk.core.metrics): Y channel, PSNR, SSIM, detail and diversity in closed forms."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from sr_desk.core import metrics as m


def grey(level: float, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), level, dtype=np.float32)


# -- Y channel ---------------------------------------------------------------------


def test_y_channel_is_bt601_studio_range():
    assert m.rgb_to_y(grey(0.0, 2))[0, 0] == pytest.approx(16 / 255)
    assert m.rgb_to_y(grey(1.0, 2))[0, 0] == pytest.approx(235 / 255)
    pixel = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=np.float32)
    assert m.rgb_to_y(pixel)[0] == pytest.approx([(16 + 65.481) / 255, (16 + 128.553) / 255, (16 + 24.966) / 255])
    as_bytes = np.array([[[255, 128, 0]]], dtype=np.uint8)
    assert m.rgb_to_y(as_bytes)[0, 0] == pytest.approx((16 + 65.481 + 128.553 * 128 / 255) / 255)


# -- PSNR / SSIM ---------------------------------------------------------------------


def test_psnr_of_identical_images_is_inf_without_warnings(rng):
    image = rng.random((24, 20, 3), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert m.psnr_y(image, image.copy(), 4) == math.inf


def test_psnr_known_value_on_a_uniform_shift():
    # A shift of d on R, G and B moves Y by 219 d / 255 everywhere.
    d = 0.1
    expected = -20 * math.log10(219 * d / 255)
    assert m.psnr_y(grey(0.5), grey(0.4), 4) == pytest.approx(expected, abs=1e-4)
    assert m.psnr_y(grey(0.4), grey(0.5), 4) == pytest.approx(expected, abs=1e-4)


def test_border_of_scale_pixels_is_cropped(rng):
    hr = rng.random((32, 32, 3), dtype=np.float32)
    sr = hr.copy()
    sr[:4] = 0.0
    sr[:, -4:] = 1.0
    assert m.psnr_y(sr, hr, 4) == math.inf
    assert m.ssim_y(sr, hr, 4) == pytest.approx(1.0)
    assert math.isfinite(m.psnr_y(sr, hr, border=0))
    assert m.ssim_y(sr, hr, border=0) < 0.99
    sr[4, 4] = 1 - hr[4, 4]  # the first pixel inside the border counts
    assert math.isfinite(m.psnr_y(sr, hr, 4))


def test_ssim_known_value_on_uniform_images():
    # No variance: SSIM is the luminance term alone, (2 a b + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2.
    a, b = m.rgb_to_y(grey(0.6, 1))[0, 0], m.rgb_to_y(grey(0.2, 1))[0, 0]
    c1 = 0.01**2
    assert m.ssim_y(grey(0.2), grey(0.6), 4) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)
    assert m.ssim_y(grey(0.6), grey(0.6), 4) == pytest.approx(1.0)


def test_metrics_refuse_mismatched_sizes():
    with pytest.raises(ValueError):
        m.psnr_y(grey(0.5, 32), grey(0.5, 36), 4)


def test_diversity_is_the_mean_per_pixel_std_in_8_bit_units():
    a, b = grey(0.0, 4), grey(2 / 255, 4)
    assert m.diversity([a]) == 0.0
    assert m.diversity([a, b]) == pytest.approx(1.0)
    c = a.copy()
    c[0, 0] = 2 / 255  # one pixel of 16 differs in all three channels
    assert m.diversity([a, c]) == pytest.approx(1 / 16)


def test_detail_ratio_closed_forms(rng):
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    ramp = np.repeat((xx / 100)[..., None], 3, axis=2)  # grey ramp: R = G = B, so Y = (16 + 219 v) / 255
    assert m.gradient_magnitude(m.rgb_to_y(ramp)) == pytest.approx(0.01 * 219 / 255)
    steeper = np.repeat((xx / 50)[..., None], 3, axis=2)
    assert m.detail_ratio(steeper * 0.5, ramp, 4) == pytest.approx(1.0)
    assert m.detail_ratio(steeper, ramp, 4) == pytest.approx(2.0)
    texture = rng.random((40, 40, 3))
    blurred = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1) + np.roll(texture, 1, (0, 1))) / 4
    assert m.detail_ratio(texture, texture, 4) == 1.0
    assert m.detail_ratio(blurred, texture, 4) < 0.7  # blur loses detail, which PSNR alone does not show
    assert math.isnan(m.detail_ratio(texture, grey(0.5, 40), 4))


def test_quantize8_rounds_and_clips():
    out = m.quantize8(np.array([[[-0.2, 0.5, 1.3]]], dtype=np.float32))
    assert out.dtype == np.float32
    assert out[0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])
