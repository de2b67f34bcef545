"""Selections: shapes with honest areas, exact set operations, immutable masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sr_desk.core.selection import Selection

SIZE = (64, 48)


def test_none_and_all() -> None:
    none = Selection.none(SIZE)
    assert none.is_empty and none.mask is None and none.bbox is None and none.area == 0
    everything = Selection.all(SIZE)
    assert not everything.is_empty
    assert everything.mask is not None and everything.mask.shape == (48, 64)
    assert everything.bbox == (0, 0, 64, 48) and everything.area == 64 * 48


def test_rect_is_clipped_and_normalised() -> None:
    sel = Selection.rect(SIZE, (-5, 40, 20, 20))
    assert sel.bbox == (0, 40, 15, 8) and sel.area == 15 * 8
    assert Selection.rect(SIZE, (30, 20, -10, -5)).bbox == (20, 15, 10, 5)
    assert Selection.rect(SIZE, (100, 0, 5, 5)).is_empty


def test_mask_is_read_only_and_constructor_copies() -> None:
    mine = np.zeros((48, 64), dtype=np.float32)
    mine[10:20, 10:20] = 1
    sel = Selection(SIZE, mine)
    mine[:] = 0  # the caller's array stays the caller's
    assert sel.area == 100
    assert sel.mask is not None
    with pytest.raises(ValueError):
        sel.mask[0, 0] = 1
    with pytest.raises(ValueError):
        Selection(SIZE, np.zeros((10, 10), dtype=np.float32))


def test_ellipse_area_and_soft_edge() -> None:
    sel = Selection.ellipse((200, 150), (20, 30, 120, 80))
    assert sel.area == pytest.approx(math.pi * 60 * 40, rel=0.02)
    assert sel.bbox == (20, 30, 120, 80)
    assert sel.mask is not None
    assert sel.mask[70, 80] == 1 and sel.mask[0, 0] == 0
    edge = sel.mask[70, 15:30]  # across the left edge, on the axis
    assert ((edge > 0) & (edge < 1)).sum() <= 2  # about one pixel of ramp
    assert np.all(np.diff(edge) >= 0)


def test_small_ellipse_area() -> None:
    sel = Selection.ellipse(SIZE, (10, 10, 9, 7))
    assert sel.area == pytest.approx(math.pi * 4.5 * 3.5, rel=0.02)


def test_polygon_triangle_area() -> None:
    sel = Selection.polygon((100, 100), [(10.0, 10.0), (90.0, 10.0), (10.0, 70.0)])
    assert sel.area == pytest.approx(80 * 60 / 2, rel=0.02)
    assert sel.bbox == (10, 10, 80, 60)
    assert sel.mask is not None
    # Anti-aliased: the hypotenuse has partial pixels.
    assert ((sel.mask > 0) & (sel.mask < 1)).any()


def test_polygon_partly_outside_and_degenerate() -> None:
    sel = Selection.polygon(SIZE, [(-10.0, -10.0), (20.0, -10.0), (20.0, 10.0), (-10.0, 10.0)])
    assert sel.bbox == (0, 0, 20, 10) and sel.area == 200
    assert Selection.polygon(SIZE, [(1.0, 1.0), (5.0, 5.0)]).is_empty


def test_combine_ops() -> None:
    a = Selection.rect(SIZE, (0, 0, 20, 10))
    b = Selection.rect(SIZE, (10, 0, 20, 10))
    assert a.combine(b, "replace") is b
    assert a.combine(b, "add").area == 300
    assert a.combine(b, "subtract").bbox == (0, 0, 10, 10)
    assert a.combine(b, "intersect").bbox == (10, 0, 10, 10)
    assert a.combine(Selection.rect(SIZE, (40, 30, 5, 5)), "intersect").is_empty
    none = Selection.none(SIZE)
    assert none.combine(a, "add") == a and a.combine(none, "subtract") == a
    with pytest.raises(ValueError):
        a.combine(b, "xor")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        a.combine(Selection.all((10, 10)), "add")


def test_subtract_is_weighted() -> None:
    a = Selection.all(SIZE)
    half = Selection(SIZE, np.full((48, 64), 0.5, dtype=np.float32))
    result = a.combine(half, "subtract")
    assert result.mask is not None and np.all(result.mask == 0.5)


def test_invert() -> None:
    a = Selection.rect(SIZE, (0, 0, 20, 10))
    inv = a.invert()
    assert inv.area == 64 * 48 - 200
    assert inv.invert() == a
    assert Selection.none(SIZE).invert() == Selection.all(SIZE)
    assert Selection.all(SIZE).invert().is_empty


def test_feather_keeps_far_pixels_exactly_zero() -> None:
    sel = Selection.rect(SIZE, (20, 15, 20, 15)).feathered(4)
    assert sel.mask is not None
    x, y, w, h = sel.bbox or (0, 0, 0, 0)
    assert x >= 16 and y >= 11 and x + w <= 44 and y + h <= 34
    outside = np.ones((48, 64), dtype=bool)
    outside[11:34, 16:44] = False
    assert np.all(sel.mask[outside] == 0)
    assert sel.mask[22, 30] == 1 and 0 < sel.mask[15, 30] < 1


def test_translated() -> None:
    sel = Selection.rect(SIZE, (10, 10, 5, 5))
    assert sel.translated(3, -4).bbox == (13, 6, 5, 5)
    assert sel.translated(-12, 0).bbox == (0, 10, 3, 5)
    assert sel.translated(100, 0).is_empty


def test_resized_4x() -> None:
    sel = Selection.rect(SIZE, (8, 8, 16, 8))
    big = sel.resized((256, 192))
    assert big.size == (256, 192)
    assert big.mask is not None and big.mask.shape == (192, 256)
    x, y, w, h = big.bbox or (0, 0, 0, 0)
    assert abs(x - 32) <= 2 and abs(y - 32) <= 2 and abs(w - 64) <= 4 and abs(h - 32) <= 4
    assert big.mask[48, 64] == 1 and big.mask[0, 0] == 0
    assert big.area == pytest.approx(16 * 8 * 16, rel=0.02)
    assert Selection.none(SIZE).resized((256, 192)) == Selection.none((256, 192))


def test_png_round_trip() -> None:
    sel = Selection.ellipse(SIZE, (5, 5, 40, 30))
    back = Selection.from_png_bytes(sel.to_png_bytes(), SIZE)
    assert back.mask is not None and sel.mask is not None
    assert np.max(np.abs(back.mask - sel.mask)) <= 0.5 / 255 + 1e-6
    hard = Selection.rect(SIZE, (1, 2, 3, 4))
    assert Selection.from_png_bytes(hard.to_png_bytes(), SIZE) == hard
    assert Selection.from_png_bytes(Selection.none(SIZE).to_png_bytes(), SIZE).is_empty
    with pytest.raises(ValueError):
        Selection.from_png_bytes(hard.to_png_bytes(), (10, 10))
    with pytest.raises(ValueError):
        Selection.from_png_bytes(b"not a png", SIZE)


def test_from_mask_shares_read_only_masks() -> None:
    sel = Selection.rect(SIZE, (1, 2, 3, 4))
    assert sel.mask is not None
    assert Selection.from_mask(SIZE, sel.mask).mask is sel.mask
    writable = np.ones((48, 64), dtype=np.float32)
    assert Selection.from_mask(SIZE, writable).mask is not writable
    assert Selection.from_mask(SIZE, None).is_empty
