"""Run an upscaler over overlapping tiles and blend them without seams.

A model that would need tens of GiB for a whole photo runs on tiles of a
few hundred pixels instead; the output can be an ``np.memmap`` so that even
the result need not fit in RAM.

How the blend works, per axis. Two neighbouring tiles overlap by ``L``
output px. The outer quarter of the overlap at each tile's inner border gets
weight 0 (a tile's border pixels saw less context than its interior, so they
are the ones most likely to be wrong); the middle half is a linear cross-fade
whose two weights sum to exactly 1. The 2-D weight is the product of the two
axis weights, so the weights of all tiles sum to 1 everywhere (the division
by the summed weight only removes float rounding). Sides on the image border
never fade, so image edges keep full weight.

Consequence: a method whose output pixel depends only on input pixels
within ``r`` px of it (its receptive radius) gives exactly the untiled result
when ``overlap / 4 >= r``. Bicubic upscaling reads 2 px each side, hence
``overlap >= 8``; Lanczos-3 needs 12; a network needs its own receptive
radius times four, or accepts a soft, invisible seam instead of exactness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .resize import scaled_size

__all__ = ["AxisWeight", "Tile", "plan_tiles", "tiled_bands", "tiled_upscale"]

_MAX_DENOMINATOR = 64


@dataclass(frozen=True)
class AxisWeight:
    """A tile's blend weight along one axis, in tile-local output px.

    0 before ``rise_start``; rises linearly over ``rise_len`` px; 1 until
    ``fall_start``; falls over ``fall_len`` px; 0 from ``fall_start + fall_len``.
    A side on the image border has ``rise_len == 0`` / ``fall_len == 0`` and
    starts / stops at the tile's edge.
    """

    rise_start: int
    rise_len: int
    fall_start: int
    fall_len: int

    @property
    def start(self) -> int:
        """First px with nonzero weight."""
        return self.rise_start

    @property
    def stop(self) -> int:
        """One past the last px with nonzero weight."""
        return self.fall_start + self.fall_len

    def profile(self) -> np.ndarray:
        """Weights over ``[start, stop)``, float32.

        The rise is ``(i + 0.5) / n`` and the fall ``1 - (i + 0.5) / n``, so a
        neighbour's fall over the same pixels complements this rise to 1.
        """
        w = np.ones(self.stop - self.start, dtype=np.float64)
        if self.rise_len:
            w[: self.rise_len] = (np.arange(self.rise_len) + 0.5) / self.rise_len
        if self.fall_len:
            w[w.size - self.fall_len :] = 1.0 - (np.arange(self.fall_len) + 0.5) / self.fall_len
        return w.astype(np.float32)


@dataclass(frozen=True)
class Tile:
    """One tile: where to read, where its result goes, and how it blends.

    Boxes are (x0, y0, x1, y1), end-exclusive; ``in_box`` in input px,
    ``out_box`` in output px.
    """

    in_box: tuple[int, int, int, int]
    out_box: tuple[int, int, int, int]
    x_weight: AxisWeight
    y_weight: AxisWeight

    @property
    def in_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.in_box
        return x1 - x0, y1 - y0

    @property
    def out_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.out_box
        return x1 - x0, y1 - y0

    def weight(self) -> np.ndarray:
        """The full out_h x out_w weight of this tile (mostly for inspection)."""
        w, h = self.out_size
        full = np.zeros((h, w), dtype=np.float32)
        xw, yw = self.x_weight, self.y_weight
        full[yw.start : yw.stop, xw.start : xw.stop] = np.outer(yw.profile(), xw.profile())
        return full


def _scale_grid(scale: float) -> tuple[int, int] | None:
    """(p, q) with scale == p/q and q <= 64, or None when no such fraction is close enough."""
    frac = Fraction(scale).limit_denominator(_MAX_DENOMINATOR)
    if abs(frac - Fraction(scale)) > Fraction(1, 10**9):
        return None
    return frac.numerator, frac.denominator


def _axis_spans(n_in: int, tile: int, overlap: int, q: int) -> list[tuple[int, int]]:
    """Input spans along one axis: origins on multiples of q, spread evenly, last one flush with the edge."""
    if n_in <= tile:
        return [(0, n_in)]
    t = max(q, tile // q * q)
    last_u = -(-(n_in - t) // q)  # last origin, in units of q, rounded up so the tile stays inside
    if last_u <= 0:
        return [(0, n_in)]
    stride_u = max(1, (t - overlap) // q)
    gaps = -(-last_u // stride_u)
    origins = [q * ((2 * k * last_u + gaps) // (2 * gaps)) for k in range(gaps + 1)]
    return [(o, min(o + t, n_in)) for o in origins]


def _out_spans(
    spans: list[tuple[int, int]], scale: float, n_out: int, grid: tuple[int, int] | None
) -> list[tuple[int, int]]:
    """Output spans, sized as ``scaled_size`` sizes the crop (what ``fn`` will return)."""
    result = []
    for i, (a, b) in enumerate(spans):
        size = max(1, round((b - a) * scale))
        start = a // grid[1] * grid[0] if grid else round(a * scale)
        if i == len(spans) - 1:
            start = n_out - size  # flush with the edge even where rounding disagrees by 1 px
        result.append((start, start + size))
    return result


def _axis_weights(out_spans: list[tuple[int, int]]) -> list[AxisWeight]:
    """Cross-fades at the middle of each overlap, over its middle half, never overlapping each other."""
    cuts: list[int] = []
    halves: list[int] = []
    for (_, end), (start, _) in zip(out_spans, out_spans[1:]):
        overlap = end - start
        if overlap < 0:
            raise ValueError("tiles leave a gap in the output; increase overlap")
        cuts.append(start + overlap // 2)
        halves.append(overlap // 4)
    for k in range(len(cuts)):
        if k > 0:
            halves[k] = min(halves[k], (cuts[k] - cuts[k - 1]) // 2)
        if k + 1 < len(cuts):
            halves[k] = min(halves[k], (cuts[k + 1] - cuts[k]) // 2)

    weights = []
    for k, (start, end) in enumerate(out_spans):
        if k > 0:
            rise = (cuts[k - 1] - halves[k - 1] - start, 2 * halves[k - 1])
        else:
            rise = (0, 0)
        if k < len(cuts):
            fall = (cuts[k] - halves[k] - start, 2 * halves[k])
        else:
            fall = (end - start, 0)
        w = AxisWeight(rise[0], rise[1], fall[0], fall[1])
        if not 0 <= w.start < w.stop <= end - start or w.rise_start + w.rise_len > w.fall_start:
            raise ValueError("tile too small for this scale and overlap")
        weights.append(w)
    return weights


def plan_tiles(input_size: tuple[int, int], scale: float, tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most ``tile`` input px a side, overlapping by at least ``overlap``, row-major.

    For scale p/q (q <= 64) tile origins are multiples of q, so every tile's
    output box starts on the global output grid exactly (origin * p / q is an
    integer) and a tile's content is not shifted by a fraction of a pixel.
    Other scales fall back to rounding (sub-pixel misalignment). If q > tile,
    tiles are q px.
    """
    width, height = int(input_size[0]), int(input_size[1])
    if width < 1 or height < 1:
        raise ValueError(f"input size must be positive, got {input_size!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")

    grid = _scale_grid(scale)
    q = grid[1] if grid else 1
    if grid is None:
        overlap = max(overlap, 2)  # rounded boxes can miss each other by 1 px without it
    out_w, out_h = scaled_size((width, height), scale)
    xs = _axis_spans(width, tile, overlap, q)
    ys = _axis_spans(height, tile, overlap, q)
    oxs = _out_spans(xs, scale, out_w, grid)
    oys = _out_spans(ys, scale, out_h, grid)
    wxs = _axis_weights(oxs)
    wys = _axis_weights(oys)
    return [
        Tile((x0, y0, x1, y1), (ox0, oy0, ox1, oy1), wx, wy)
        for (y0, y1), (oy0, oy1), wy in zip(ys, oys, wys)
        for (x0, x1), (ox0, ox1), wx in zip(xs, oxs, wxs)
    ]


def tiled_upscale(
    image: np.ndarray,
    scale: float,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int = 256,
    overlap: int = 16,
    out: np.ndarray | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Apply ``fn`` (an upscaler by ``scale``) tile by tile and blend the tiles seamlessly.

    ``fn`` gets a C-contiguous float32 crop (h x w [x C]) and must return
    ``scaled_size((w, h), scale)`` pixels, i.e. shape
    ``(round(h*scale), round(w*scale)[, C])``; anything else raises ValueError.

    Exactness: the outer quarter of each overlap is dropped from the blend, so
    a method with receptive radius ``r`` input px reproduces its untiled result
    (to float rounding) when ``overlap >= 4 * r``: 8 for bicubic, 12 for
    Lanczos-3. A smaller overlap still blends smoothly, just not exactly.

    ``out`` (shape ``(H*scale, W*scale[, C])``, floating dtype, e.g. an
    ``np.memmap``) receives the result and is returned. The blend runs in
    bands of rows (:func:`tiled_bands`), so besides ``out`` only one band of
    tiles is held. ``on_tile(index, count)`` runs after each tile, ``index``
    0-based; an exception it raises (a cancel) propagates and leaves ``out`` partial.
    """
    height, width = image.shape[:2]
    out_w, out_h = scaled_size((width, height), scale)
    out_shape = (out_h, out_w) + image.shape[2:]
    if out is None:
        out = np.zeros(out_shape, dtype=np.float32)
    else:
        if out.shape != out_shape:
            raise ValueError(f"out has shape {out.shape}, expected {out_shape}")
        if not np.issubdtype(out.dtype, np.floating):
            raise ValueError(f"out must have a floating dtype, got {out.dtype}")
    for first, rows in tiled_bands(image, scale, fn, tile=tile, overlap=overlap, on_tile=on_tile):
        out[first : first + rows.shape[0]] = rows
    return out


def tiled_bands(
    image: np.ndarray,
    scale: float,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int = 256,
    overlap: int = 16,
    on_tile: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`tiled_upscale`, yielding ``(first row, rows)`` of finished float32 output, top to bottom.

    Tiles run a row of tiles at a time; once a row of tiles is done, every
    output row above the next row's first weighted row is final and is
    yielded. Only the rows under the current row of tiles are held, so a
    result can go to a file band by band without ever being whole in memory.

    The band is allocated once and reused: ``rows`` is a view into it, the
    caller's to read (or change in place) until it asks for the next band.
    A 4x of a 24 MP photo in 512 px tiles holds a 590 MB band, and each
    extra copy of it (growing, dividing, shifting) would be as much again.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C image, got shape {image.shape}")
    height, width = image.shape[:2]
    tiles = plan_tiles((width, height), scale, tile, overlap)
    out_w, out_h = scaled_size((width, height), scale)
    channels = image.shape[2:]
    tile_rows: list[list[tuple[int, Tile]]] = []
    for index, t in enumerate(tiles):
        if not tile_rows or tile_rows[-1][0][1].in_box[1] != t.in_box[1]:
            tile_rows.append([])
        tile_rows[-1].append((index, t))

    band_ends = [max(t.out_box[1] + t.y_weight.stop for _, t in row) for row in tile_rows]
    dones = [min(t.out_box[1] + t.y_weight.start for _, t in row) for row in tile_rows[1:]] + [out_h]
    height_needed, first = 0, 0  # the tallest band: from the first row not yet yielded to the row's end
    for end, done in zip(band_ends, dones, strict=True):
        height_needed, first = max(height_needed, end - first), max(first, done)
    acc = np.zeros((height_needed, out_w) + channels, dtype=np.float32)
    weight_sum = np.zeros((height_needed, out_w), dtype=np.float32)
    first = 0  # the output row that acc's row 0 holds
    held = 0  # rows of acc carried over from the previous band (weighted, not yet final)
    for r, row in enumerate(tile_rows):
        for index, t in row:
            _blend_tile(image, fn, t, index, scale, channels, acc, weight_sum, first)
            if on_tile is not None:
                on_tile(index, len(tiles))
        held = max(held, band_ends[r] - first)
        count = dones[r] - first
        if count <= 0:
            continue
        weights = weight_sum[:count]
        if not weights.all():
            raise RuntimeError("tiling left output pixels uncovered (bug)")
        rows = acc[:count]
        np.divide(rows, weights[..., None] if channels else weights, out=rows)
        yield first, rows
        rest = max(0, held - count)  # the weighted rows below the band move to the top; the rest starts at zero
        acc[:rest] = acc[count : count + rest]
        weight_sum[:rest] = weight_sum[count : count + rest]
        acc[rest:held] = 0
        weight_sum[rest:held] = 0
        first, held = dones[r], rest


def _blend_tile(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    t: Tile,
    index: int,
    scale: float,
    channels: tuple[int, ...],
    acc: np.ndarray,
    weight_sum: np.ndarray,
    first: int,
) -> None:
    """Run ``fn`` on one tile and add its weighted result into the band ``acc`` (whose row 0 is ``first``)."""
    x0, y0, x1, y1 = t.in_box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32)
    result = np.asarray(fn(crop))
    ox0, oy0, ox1, oy1 = t.out_box
    expected = (oy1 - oy0, ox1 - ox0) + channels
    if result.shape != expected:
        raise ValueError(
            f"tile {index}: fn returned shape {result.shape} for a {crop.shape} crop, "
            f"expected {expected} (the crop upscaled by {scale})"
        )
    wx, wy = t.x_weight, t.y_weight
    weight = np.outer(wy.profile(), wx.profile())
    rows = slice(oy0 + wy.start - first, oy0 + wy.stop - first)
    cols = slice(ox0 + wx.start, ox0 + wx.stop)
    part = result[wy.start : wy.stop, wx.start : wx.stop]
    acc[rows, cols] += part * (weight[..., None] if channels else weight)
    weight_sum[rows, cols] += weight
