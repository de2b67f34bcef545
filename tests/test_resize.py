"""Float resampling: shapes, precision, and the size helpers."""

from __future__ import annotations

import numpy as np
import pytest

from sr_desk.core.resize import Filter, clip01, fit_within, resize, scaled_size


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(1).random((23, 37, 3), dtype=np.float32)


@pytest.mark.parametrize("filt", list(Filter))
@pytest.mark.parametrize("scale", [2, 3, 4, 1.5, 2.5, 0.5, 0.37])
def test_resize_shape_dtype(rgb: np.ndarray, filt: Filter, scale: float) -> None:
    size = scaled_size((37, 23), scale)
    out = resize(rgb, size, filt)
    assert out.shape == (size[1], size[0], 3)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous


def test_resize_grayscale(rgb: np.ndarray) -> None:
    out = resize(rgb[:, :, 0], (50, 40))
    assert out.shape == (40, 50)
    assert out.dtype == np.float32


@pytest.mark.parametrize("filt", list(Filter))
def test_constant_stays_constant(filt: Filter) -> None:
    img = np.full((13, 17, 3), 0.3721, dtype=np.float32)
    for size in [(34, 26), (51, 39), (9, 7), (25, 20)]:
        np.testing.assert_allclose(resize(img, size, filt), 0.3721, atol=1e-6)


def test_no_quantisation() -> None:
    img = np.full((8, 8), 0.5 + 1e-4, dtype=np.float32)
    img[::2, ::2] += 1e-3
    out = resize(img, (16, 16), Filter.NEAREST)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(img, 2, 0), 2, 1))
    out = resize(img, (24, 24), Filter.BICUBIC)
    # An 8-bit trip would snap to multiples of 1/255 (~0.0039).
    assert len(np.unique(out)) > 10
    assert np.abs(out - 0.5).max() < 2e-3


def test_bicubic_overshoots_unclipped() -> None:
    img = np.zeros((8, 8), dtype=np.float32)
    img[:, 4:] = 1.0
    out = resize(img, (32, 32), Filter.BICUBIC)
    assert out.max() > 1.0 and out.min() < 0.0
    clipped = clip01(out)
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    assert clipped.dtype == np.float32


def test_same_size_is_a_copy(rgb: np.ndarray) -> None:
    out = resize(rgb, (37, 23))
    np.testing.assert_array_equal(out, rgb)
    assert out is not rgb and not np.shares_memory(out, rgb)


def test_bad_size(rgb: np.ndarray) -> None:
    with pytest.raises(ValueError):
        resize(rgb, (0, 5))


def test_scaled_size() -> None:
    assert scaled_size((97, 61), 2) == (194, 122)
    assert scaled_size((10, 7), 1.5) == (15, 10)  # round(10.5) -> 10, banker's rounding
    assert scaled_size((3, 3), 0.01) == (1, 1)


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((400, 300), (200, 200), (200, 150)),
        ((300, 400), (200, 200), (150, 200)),
        ((100, 50), (1000, 1000), (1000, 500)),
        ((1920, 1080), (1280, 1280), (1280, 720)),
        ((7, 3), (10, 10), (10, 4)),
        ((1000, 1), (10, 10), (10, 1)),
        ((64, 64), (64, 64), (64, 64)),
    ],
)
def test_fit_within(size: tuple[int, int], box: tuple[int, int], expected: tuple[int, int]) -> None:
    got = fit_within(size, box)
    assert got == expected
    assert got[0] <= box[0] and got[1] <= box[1]
    assert got[0] == box[0] or got[1] == box[1]
