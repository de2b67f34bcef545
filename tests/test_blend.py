"""Seamless cloning (sr_desk/core/blend.py) against cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from sr_desk.core.blend import membrane, poisson_blend


def ellipse(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((((xx - size / 2) / radius) ** 2 + ((yy - size / 2) / radius) ** 2) <= 1).astype(np.float32)


@pytest.fixture
def base(rng):
    smooth = np.linspace(0.2, 0.7, 64, dtype=np.float32)
    return np.stack([np.add.outer(smooth, smooth) / 2] * 3, axis=-1) + rng.random((64, 64, 3), dtype=np.float32) * 0.02


def test_a_donor_that_is_the_base_plus_a_constant_becomes_the_base(base):
    mask = ellipse(64, 20)
    out = poisson_blend(base, np.clip(base + 0.2, 0, 1), mask)
    assert np.abs(out - base).max() < 2e-3


def test_outside_the_region_nothing_changes(base, rng):
    mask = ellipse(64, 12)
    out = poisson_blend(base, rng.random(base.shape, dtype=np.float32), mask)
    assert np.array_equal(out[mask <= 0.5], base[mask <= 0.5])


def test_the_donor_s_detail_comes_in_and_its_offset_goes(base):
    mask = ellipse(64, 24)
    stripes = (np.indices((64, 64))[1] % 4 < 2).astype(np.float32)[..., None] * 0.1
    donor = np.clip(base * 0 + 0.9 - stripes, 0, 1)  # another brightness altogether, with stripes
    out = poisson_blend(base, donor, mask)
    inner = ellipse(64, 16) > 0.5
    detail = (out - base)[inner, 0]
    expected = -stripes[inner, 0]
    assert np.corrcoef(detail, expected)[0, 1] > 0.9  # the stripes are there
    assert abs(float((out - donor)[inner].mean())) > 0.1  # the donor's own brightness is not


def test_large_regions_solve_on_a_coarse_grid_and_stay_seamless(rng):
    size = 600
    base = np.full((size, size, 3), 0.4, np.float32)
    donor = np.full((size, size, 3), 0.8, np.float32)
    mask = ellipse(size, 250)
    m = membrane(base, donor, mask > 0.5, max_side=128)
    assert m.shape == base.shape
    out = poisson_blend(base, donor, mask, max_side=128)
    assert np.abs(out - base).max() < 0.01  # constant offset: the membrane removes it everywhere


def test_sizes_must_agree(base):
    with pytest.raises(ValueError):
        poisson_blend(base, base[:10], ellipse(64, 10))


def test_a_limited_edge_condition_evens_out_shading_but_not_other_content(base):
    """Issue 33: a face's edge over hair spread the hair's darkness into the face."""
    mask = np.zeros(base.shape[:2], np.float32)
    mask[8:24, 8:24] = 1
    donor = base + 0.05  # a shading difference: evened out whatever the limit
    assert np.allclose(poisson_blend(base, donor, mask, max_difference=0.1)[12:20, 12:20], base[12:20, 12:20],
                       atol=1e-3)
    bright = base + 0.4  # beyond the limit: only the limit is taken off
    blended = poisson_blend(base, bright, mask, max_difference=0.1)[12:20, 12:20]
    assert np.allclose(blended, bright[12:20, 12:20] - 0.1, atol=1e-3)
