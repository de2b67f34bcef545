"""Tiled upscaling must reproduce the untiled result for local methods."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sr_desk.core.resize import Filter, resize, scaled_size
from sr_desk.core.tiling import plan_tiles, tiled_bands, tiled_upscale


def _rng_image(h: int, w: int, c: int | None = 3, seed: int = 0) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _nearest(k: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def _resizer(scale: float, filt: Filter = Filter.BICUBIC) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: resize(a, scaled_size((a.shape[1], a.shape[0]), scale), filt)


# -- plan_tiles ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "scale", "tile", "overlap"),
    [
        ((97, 61), 2, 32, 8),
        ((97, 61), 4, 32, 8),
        ((200, 130), 1.5, 48, 8),
        ((200, 130), 2.5, 40, 8),
        ((201, 131), 1.5, 48, 8),
        ((64, 64), 2, 64, 16),
        ((65, 64), 2, 64, 16),
        ((300, 50), 0.5, 64, 16),
        ((150, 90), 4 / 3, 50, 10),
        ((150, 90), 1.2345678, 50, 10),  # not p/q with q <= 64: rounding fallback
    ],
)
def test_plan_covers_output_and_stays_inside(
    size: tuple[int, int], scale: float, tile: int, overlap: int
) -> None:
    tiles = plan_tiles(size, scale, tile, overlap)
    out_w, out_h = scaled_size(size, scale)
    weight = np.zeros((out_h, out_w), dtype=np.float64)
    for t in tiles:
        x0, y0, x1, y1 = t.in_box
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
        assert x1 - x0 <= tile and y1 - y0 <= tile
        assert t.out_size == scaled_size(t.in_size, scale)
        ox0, oy0, ox1, oy1 = t.out_box
        assert 0 <= ox0 < ox1 <= out_w and 0 <= oy0 < oy1 <= out_h
        weight[oy0:oy1, ox0:ox1] += t.weight()
    np.testing.assert_allclose(weight, 1.0, atol=1e-6)


def test_single_tile_when_it_fits() -> None:
    tiles = plan_tiles((60, 40), 2, 64, 16)
    assert len(tiles) == 1
    assert tiles[0].in_box == (0, 0, 60, 40) and tiles[0].out_box == (0, 0, 120, 80)
    assert (tiles[0].weight() == 1).all()


@pytest.mark.parametrize(("scale", "q"), [(1.5, 2), (2.5, 2), (4 / 3, 3), (1.25, 4)])
def test_origins_align_to_output_grid(scale: float, q: int) -> None:
    tiles = plan_tiles((240, 180), scale, 50, 8)
    assert len(tiles) > 4
    for t in tiles:
        x0, y0, _, _ = t.in_box
        assert x0 % q == 0 and y0 % q == 0
        assert t.out_box[0] == pytest.approx(x0 * scale, abs=1e-9)
        assert t.out_box[1] == pytest.approx(y0 * scale, abs=1e-9)


def test_last_tile_is_clamped_not_a_sliver() -> None:
    tiles = plan_tiles((97, 61), 2, 32, 8)
    widths = {t.in_size[0] for t in tiles}
    heights = {t.in_size[1] for t in tiles}
    assert widths == {32} and heights == {32}
    assert max(t.in_box[2] for t in tiles) == 97
    assert max(t.in_box[3] for t in tiles) == 61


def test_image_borders_keep_full_weight() -> None:
    for t in plan_tiles((97, 61), 2, 32, 8):
        w = t.weight()
        ox0, oy0, ox1, oy1 = t.out_box
        if ox0 == 0:
            assert w[:, 0].max() == 1.0
        if oy0 == 0:
            assert w[0, :].max() == 1.0


@pytest.mark.parametrize(("tile", "overlap"), [(0, 0), (16, 16), (16, -1)])
def test_plan_rejects_bad_arguments(tile: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        plan_tiles((100, 100), 2, tile, overlap)


# -- tiled_upscale: exactness ---------------------------------------------------


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"),
    [(61, 97, 32, 8), (61, 97, 17, 4), (50, 50, 24, 0), (33, 130, 40, 12), (97, 61, 32, 31)],
)
def test_tiled_nearest_matches_untiled(k: int, h: int, w: int, tile: int, overlap: int) -> None:
    img = _rng_image(h, w)
    got = tiled_upscale(img, k, _nearest(k), tile=tile, overlap=overlap)
    want = _nearest(k)(img)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-6


def test_tiled_identity() -> None:
    img = _rng_image(61, 97)
    got = tiled_upscale(img, 1, lambda a: a.copy(), tile=32, overlap=8)
    assert np.abs(got - img).max() < 1e-6


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(("tile", "overlap"), [(32, 8), (17, 8), (48, 16)])
def test_tiled_bicubic_matches_untiled(scale: int, tile: int, overlap: int) -> None:
    img = _rng_image(61, 97, seed=scale)
    fn = _resizer(scale)
    got = tiled_upscale(img, scale, fn, tile=tile, overlap=overlap)
    want = fn(img)
    assert np.abs(got - want).max() < 1e-5  # measured ~1.8e-7; the bar is 1/510


@pytest.mark.parametrize("scale", [1.5, 2.5])
def test_tiled_bicubic_fractional_scale(scale: float) -> None:
    img = _rng_image(60, 96, seed=7)  # scale * size is an integer on both axes
    fn = _resizer(scale)
    got = tiled_upscale(img, scale, fn, tile=32, overlap=8)
    assert np.abs(got - fn(img)).max() < 1e-5


def test_tiled_lanczos_needs_wider_overlap() -> None:
    img = _rng_image(61, 97, seed=3)
    fn = _resizer(2, Filter.LANCZOS)
    got = tiled_upscale(img, 2, fn, tile=40, overlap=12)
    assert np.abs(got - fn(img)).max() < 1e-5


def test_grayscale_input() -> None:
    img = _rng_image(61, 97, c=None)
    got = tiled_upscale(img, 2, _resizer(2), tile=32, overlap=8)
    assert got.shape == (122, 194)
    assert np.abs(got - _resizer(2)(img)).max() < 1e-5
    got = tiled_upscale(img, 4, _nearest(4), tile=32, overlap=8)
    assert np.abs(got - _nearest(4)(img)).max() < 1e-6


# -- tiled_upscale: plumbing ------------------------------------------------------


def test_bad_fn_shape_raises() -> None:
    img = _rng_image(61, 97)
    with pytest.raises(ValueError, match="expected"):
        tiled_upscale(img, 2, _nearest(3), tile=32, overlap=8)
    with pytest.raises(ValueError, match="expected"):
        tiled_upscale(img, 2, lambda a: _nearest(2)(a)[..., :1], tile=32, overlap=8)


def test_out_memmap(tmp_path: Path) -> None:
    img = _rng_image(61, 97)
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=(122, 194, 3))
    got = tiled_upscale(img, 2, _nearest(2), tile=32, overlap=8, out=out)
    assert got is out
    out.flush()
    del got, out
    back = np.load(tmp_path / "out.npy")
    assert np.abs(back - _nearest(2)(img)).max() < 1e-6


def test_out_wrong_shape_raises() -> None:
    img = _rng_image(20, 20)
    with pytest.raises(ValueError):
        tiled_upscale(img, 2, _nearest(2), out=np.zeros((40, 41, 3), np.float32))


def test_on_tile_progress_and_cancel() -> None:
    img = _rng_image(61, 97)
    count = len(plan_tiles((97, 61), 2, 32, 8))
    calls: list[tuple[int, int]] = []
    tiled_upscale(img, 2, _nearest(2), tile=32, overlap=8, on_tile=lambda i, n: calls.append((i, n)))
    assert calls == [(i, count) for i in range(count)]

    class Cancelled(Exception):
        pass

    def cancel(i: int, n: int) -> None:
        if i == 2:
            raise Cancelled

    seen: list[int] = []

    def fn(a: np.ndarray) -> np.ndarray:
        seen.append(1)
        return _nearest(2)(a)

    with pytest.raises(Cancelled):
        tiled_upscale(img, 2, fn, tile=32, overlap=8, on_tile=cancel)
    assert len(seen) == 3


@pytest.mark.parametrize(("scale", "tile", "overlap"), [(2, 32, 8), (4, 17, 8), (1.5, 48, 8), (3, 200, 16)])
def test_bands_come_in_order_hold_only_a_row_of_tiles_and_equal_the_whole(scale: float, tile: int, overlap: int) -> None:
    img = _rng_image(97, 61, seed=3)
    fn = _resizer(scale)
    views = list(tiled_bands(img, scale, fn, tile=tile, overlap=overlap))  # each valid until the next is asked
    assert all(np.shares_memory(rows, views[0][1]) for _, rows in views)  # one band buffer, reused
    bands = [(first, rows.copy()) for first, rows in tiled_bands(img, scale, fn, tile=tile, overlap=overlap)]
    starts = [first for first, _ in bands]
    assert starts[0] == 0 and starts == sorted(starts)
    assert all(a + rows.shape[0] == b for (a, rows), b in zip(bands, starts[1:]))  # contiguous, no gaps
    np.testing.assert_array_equal(np.concatenate([rows for _, rows in bands]),
                                  tiled_upscale(img, scale, fn, tile=tile, overlap=overlap))
    tallest_tile = max(t.out_box[3] - t.out_box[1] for t in plan_tiles((61, 97), scale, tile, overlap))
    assert max(rows.shape[0] for _, rows in bands) <= tallest_tile  # never more than one row of tiles


def test_bands_stop_where_the_consumer_stops() -> None:
    calls = []
    bands = tiled_bands(_rng_image(100, 40), 2, lambda a: (calls.append(1), _nearest(2)(a))[1], tile=32, overlap=8)
    next(bands)
    assert 0 < len(calls) < len(plan_tiles((40, 100), 2, 32, 8))  # tiles below the first band have not run
