"""Masks: exact zeros and ones where the selection says so."""

from __future__ import annotations

import numpy as np
import pytest

from sr_desk.core.masks import composite, feather_mask, mask_bbox, outline_polygons, rect_mask, resize_mask


def test_rect_mask_and_clipping() -> None:
    m = rect_mask((40, 30), (5, 6, 10, 4))
    assert m.shape == (30, 40) and m.dtype == np.float32
    assert m.sum() == 40 and (m[6:10, 5:15] == 1).all()
    clipped = rect_mask((40, 30), (-5, 25, 10, 100))
    assert mask_bbox(clipped) == (0, 25, 5, 5)


@pytest.mark.parametrize("box", [(40, 0, 5, 5), (-10, 0, 10, 5), (3, 3, 0, 5)])
def test_rect_mask_empty_raises(box: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError):
        rect_mask((40, 30), box)


@pytest.mark.parametrize("radius", [1, 2, 5, 9.6, 16])
def test_feather_keeps_far_zero_and_inner_one(radius: float) -> None:
    r = round(radius)
    m = rect_mask((160, 120), (40, 30, 70, 60))
    f = feather_mask(m, radius)
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    outside = np.ones_like(m, dtype=bool)
    outside[30 - r : 90 + r, 40 - r : 110 + r] = False
    assert (f[outside] == 0).all()
    assert (f[30 + r : 90 - r, 40 + r : 110 - r] == 1).all()
    # The edge really is soft, and symmetric about the old edge.
    assert 0 < f[60, 40 - r] < 0.5 < f[60, 40 + r - 1] < 1
    np.testing.assert_allclose(f[60, 39] + f[60, 40], 1.0, atol=1e-6)


def test_feather_noisy_mask_support() -> None:
    rng = np.random.default_rng(0)
    m = np.zeros((80, 90), dtype=np.float32)
    m[20:40, 30:50] = rng.random((20, 20), dtype=np.float32)
    f = feather_mask(m, 6)
    keep = np.zeros_like(m, dtype=bool)
    keep[14:46, 24:56] = True
    assert (f[~keep] == 0).all()
    assert f[keep].max() > 0


def test_feather_radius_zero_is_copy() -> None:
    m = rect_mask((20, 10), (2, 2, 5, 5))
    f = feather_mask(m, 0)
    np.testing.assert_array_equal(f, m)
    assert not np.shares_memory(f, m)


def test_feather_border_selection_does_not_fade() -> None:
    m = np.ones((30, 40), dtype=np.float32)
    np.testing.assert_array_equal(feather_mask(m, 7), m)
    empty = np.zeros((30, 40), dtype=np.float32)
    np.testing.assert_array_equal(feather_mask(empty, 7), empty)


def test_mask_bbox() -> None:
    m = np.zeros((30, 40), dtype=np.float32)
    assert mask_bbox(m) is None
    m[5, 7] = 0.2
    m[12, 30] = 0.9
    assert mask_bbox(m) == (7, 5, 24, 8)
    assert mask_bbox(m, threshold=0.5) == (30, 12, 1, 1)


def test_composite_exact_outside_and_inside() -> None:
    rng = np.random.default_rng(3)
    base = rng.random((50, 60, 3), dtype=np.float32)
    over = rng.random((50, 60, 3), dtype=np.float32)
    mask = feather_mask(rect_mask((60, 50), (10, 10, 30, 25)), 4)
    out = composite(base, over, mask)
    assert out.dtype == np.float32
    zero, one = mask == 0, mask == 1
    assert zero.any() and one.any()
    assert out[zero].tobytes() == base[zero].tobytes()
    assert out[one].tobytes() == over[one].tobytes()
    mid = ~(zero | one)
    expected = base * (1 - mask[..., None]) + over * mask[..., None]
    np.testing.assert_allclose(out[mid], expected[mid], atol=1e-6)


def test_composite_grayscale_and_shape_checks() -> None:
    base = np.full((10, 12), 0.25, dtype=np.float32)
    over = np.full((10, 12), 0.75, dtype=np.float32)
    mask = np.zeros((10, 12), dtype=np.float32)
    mask[:, 6:] = 0.5
    out = composite(base, over, mask)
    assert (out[:, :6] == 0.25).all() and np.allclose(out[:, 6:], 0.5)
    with pytest.raises(ValueError):
        composite(base, over, mask[:5])
    with pytest.raises(ValueError):
        composite(base, over[:5], mask)


def test_resize_mask() -> None:
    m = feather_mask(rect_mask((40, 30), (10, 10, 20, 10)), 3)
    big = resize_mask(m, (80, 60))
    assert big.shape == (60, 80) and big.dtype == np.float32
    assert big.min() >= 0 and big.max() <= 1
    small = resize_mask(m, (13, 9))
    assert small.shape == (9, 13)
    assert small.min() >= 0 and small.max() <= 1


# -- the outline -------------------------------------------------------------------------------


def test_the_outline_of_a_rectangle_is_its_four_corners_clockwise():
    mask = rect_mask((40, 30), (5, 6, 10, 8))
    assert outline_polygons(mask) == [[(5, 6), (15, 6), (15, 14), (5, 14)]]


def test_the_outline_has_a_loop_for_each_hole_and_none_for_nothing():
    mask = np.ones((20, 20), dtype=np.float32)
    mask[5:10, 5:10] = 0
    loops = outline_polygons(mask)
    assert len(loops) == 2 and sorted(len(loop) for loop in loops) == [4, 4]
    assert {v for loop in loops for v in loop} == {(0, 0), (20, 0), (20, 20), (0, 20),
                                                   (5, 5), (10, 5), (10, 10), (5, 10)}
    assert outline_polygons(None) == [] and outline_polygons(np.zeros((4, 4), np.float32)) == []
    faint = np.zeros((10, 10), dtype=np.float32)
    faint[2:4, 2:4] = 0.2  # never reaches 0.5: outlined above zero, never invisible
    assert outline_polygons(faint) == [[(2, 2), (4, 2), (4, 4), (2, 4)]]


def test_a_ragged_outline_is_traced_on_a_coarser_grid_inside_the_mask_s_box():
    mask = (np.random.default_rng(0).random((200, 300)) > 0.5).astype(np.float32)
    loops = outline_polygons(mask, max_segments=2_000)
    vertices = np.array([v for loop in loops for v in loop])
    assert len(vertices) <= 2_000
    assert vertices.min() >= 0 and vertices[:, 0].max() <= 300 and vertices[:, 1].max() <= 200
