"""Fidelity: a result consistent with its input scores high and maps to zero departure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sr_desk.core.fidelity import departure_map, downscale_to, heat_map, lr_psnr
from sr_desk.core.resize import Filter, resize


def smooth_image(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack(
        [0.5 + 0.4 * np.sin(x / 5), 0.5 + 0.4 * np.cos(y / 4), 0.3 + 0.01 * (x + y)], axis=-1
    )
    return rgb.astype(np.float32)


def test_downscale_to_size() -> None:
    assert downscale_to(np.zeros((40, 60, 3), np.float32), (15, 10)).shape == (10, 15, 3)


def test_lr_psnr_of_bicubic_round_trip_is_high() -> None:
    lr = smooth_image()
    sr = resize(lr, (128, 96), Filter.BICUBIC)
    assert 35 < lr_psnr(sr, lr) < math.inf


def test_lr_psnr_exact_downscale_is_inf_and_noise_lowers_it(rng: np.random.Generator) -> None:
    sr = resize(smooth_image(), (128, 96), Filter.BICUBIC)
    lr = downscale_to(sr, (32, 24))
    assert lr_psnr(sr, lr) == math.inf
    noisy = sr + rng.normal(0, 0.2, sr.shape).astype(np.float32)
    assert lr_psnr(noisy, lr) < 30


def test_departure_map_zero_for_consistent_result() -> None:
    sr = resize(smooth_image(), (128, 96), Filter.BICUBIC)
    lr = downscale_to(sr, (32, 24))
    dep = departure_map(sr, lr)
    assert dep.shape == (24, 32) and dep.dtype == np.float32 and np.all(dep == 0)
    changed = sr.copy()
    changed[40:48, 60:68] += 0.3  # a hallucinated blob
    dep = departure_map(changed, lr)
    assert dep[11, 16] > 0.05 and dep[0, 0] == 0


def test_departure_map_rejects_mismatched_channels() -> None:
    with pytest.raises(ValueError):
        departure_map(np.zeros((8, 8, 3), np.float32), np.zeros((4, 4), np.float32))


def test_heat_map_shape_and_alpha() -> None:
    dep = np.zeros((3, 4), np.float32)
    dep[1, 2] = 0.1
    dep[2, 3] = 0.5  # beyond vmax: clipped to the top of the ramp
    dep[0, 1] = 0.05
    heat = heat_map(dep, (16, 12), vmax=0.1)
    assert heat.shape == (12, 16, 4) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    assert np.all(heat[0:4, 0:4, 3] == 0)  # no departure: transparent
    top = heat[4:8, 8:12]  # input pixel (1, 2) as a 4x4 block
    assert np.all(top == top[0, 0]) and top[0, 0, 3] > 0.5
    assert top[0, 0, 0] > 0.5 and top[0, 0, 1] < 0.1  # red
    mid = heat[0, 4]
    assert 0 < mid[3] < top[0, 0, 3] and mid[1] > top[0, 0, 1]  # fainter, more yellow
    assert np.array_equal(heat[8, 12], top[0, 0])
    with pytest.raises(ValueError):
        heat_map(dep, (16, 12), vmax=0)


def test_the_model_departure_map_is_zero_where_only_bicubic_ran(rng: np.random.Generator) -> None:
    """Issue 28: outside a selection the result is bicubic, which the heat map lit up along every edge."""
    from sr_desk.core.fidelity import model_departure_map

    lr = np.clip(smooth_image() + rng.normal(0, 0.05, (24, 32, 3)).astype(np.float32), 0, 1)
    plain = np.clip(resize(lr, (128, 96), Filter.BICUBIC), 0, 1)
    assert departure_map(plain, lr).max() > 0.02  # bicubic itself departs along the grain
    assert np.all(model_departure_map(plain, lr) == 0)
    changed = plain.copy()
    changed[40:48, 60:68] += 0.3  # what a method invented, in its selection
    departure = model_departure_map(changed, lr)
    assert departure[11, 16] > 0.05 and departure[0, 0] == 0 and departure[20, 5] == 0


def test_the_compare_view_and_the_quality_bench_give_one_lr_psnr_for_one_pair(rng: np.random.Generator) -> None:
    """Issue 32: the editor shrank with Pillow's bicubic, the bench with MATLAB's imresize; they disagreed.

    The bench's number is the evaluation library's (``bench/quality.py`` runs ``sr_desk.engine.evaluation``).
    """
    from sr_desk.engine import evaluation

    lr = rng.random((12, 10, 3), dtype=np.float32)
    sr = np.clip(resize(lr, (40, 48), Filter.LANCZOS) + rng.normal(0, 0.02, (48, 40, 3)), 0, 1).astype(np.float32)
    assert lr_psnr(sr, lr) == pytest.approx(evaluation.lr_psnr(sr, lr, 4), abs=1e-9)
    assert 10 < lr_psnr(sr, lr) < 60
