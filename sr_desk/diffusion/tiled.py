"""Running a noise predictor on overlapping tiles at every step, so that any canvas fits in memory.

The prediction for the whole image is the weighted average of the tiles'
predictions, with weights that ramp linearly across each overlap. As the
average is taken at every sampler step (as MultiDiffusion does), the tiles
agree on one trajectory and the result shows no seams: there is no final
stitching of separately finished tiles.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sr_desk.diffusion.samplers.base import NoisePredictor

__all__ = ["WindowPredictor", "balanced_tile", "tile_starts", "tiled_predictor", "tiled_window_predictor"]


def balanced_tile(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """The side, at most ``tile``, of the fewest tiles that cover ``length``, shrunk so they share it evenly.

    A 1024 px side in tiles of at most 512 overlapping by 64 needs three; three
    of 384 cover it as well as three of 512 and cost 44% less (and far less
    than that where attention is quadratic in the tile's area).
    """
    if tile >= length:
        return length
    if not 0 <= overlap < tile:
        raise ValueError(f"the overlap ({overlap}) must be smaller than the tile ({tile})")
    count = -(-(length - overlap) // (tile - overlap))
    side = -(-(length + (count - 1) * overlap) // count)
    return min(tile, -(-side // multiple) * multiple)


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` overlapping by at least ``overlap``.

    Every start is a multiple of ``multiple`` where the length allows, so tiles fit the network.
    """
    if tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"the overlap ({overlap}) must be smaller than the tile ({tile})")
    count = -(-(length - overlap) // (tile - overlap))
    last = length - tile
    starts = [round(k * last / (count - 1)) for k in range(count)]
    return sorted({s - s % multiple for s in starts[:-1]} | {last})


def _ramp(length: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    weight = torch.ones(length)
    if overlap > 0:
        rise = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if not first:
            weight[:overlap] = rise
        if not last:
            weight[-overlap:] = rise.flip(0)
    return weight


#: ``predict(window, step, box)``: the noise in ``window``, cut from the whole at ``box = (top, left)``.
WindowPredictor = Callable[[torch.Tensor, int, tuple[int, int]], torch.Tensor]


def tiled_predictor(predict_noise: NoisePredictor, tile: int, overlap: int = 32, multiple: int = 1) -> NoisePredictor:
    """``predict_noise`` run on windows of at most ``tile`` px a side (balanced) and blended; whole when it fits."""
    return tiled_window_predictor(lambda window, i, box: predict_noise(window, i), tile, overlap, multiple)


def tiled_window_predictor(
    predict: WindowPredictor, tile: int, overlap: int = 32, multiple: int = 1
) -> NoisePredictor:
    """:func:`tiled_predictor` for a conditional network: ``predict`` also gets each window's place.

    A network conditioned on a per-pixel map (SRDiff's projected LR
    features) crops the map to the same ``box`` as the window it is given.
    """
    if tile % multiple:
        raise ValueError(f"the tile ({tile}) must be a multiple of {multiple}")

    def predict_whole(x: torch.Tensor, i: int) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height <= tile and width <= tile:
            return predict(x, i, (0, 0))
        out = torch.zeros_like(x)
        total = torch.zeros((height, width), dtype=x.dtype, device=x.device)
        tile_h = balanced_tile(height, tile, overlap, multiple)
        tile_w = balanced_tile(width, tile, overlap, multiple)
        rows, cols = tile_starts(height, tile_h, overlap, multiple), tile_starts(width, tile_w, overlap, multiple)
        for r, top in enumerate(rows):
            for c, left in enumerate(cols):
                window = x[..., top : top + tile_h, left : left + tile_w]
                h, w = window.shape[-2:]
                weight = (_ramp(h, overlap, r == 0, r == len(rows) - 1)[:, None]
                          * _ramp(w, overlap, c == 0, c == len(cols) - 1)[None, :]).to(x.device, x.dtype)
                out[..., top : top + h, left : left + w] += predict(window, i, (top, left)) * weight
                total[top : top + h, left : left + w] += weight
        return out / total

    return predict_whole
