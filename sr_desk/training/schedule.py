"""The learning rate over a run: linear warm-up, then a cosine down to a floor (nanoGPT's schedule)."""

from __future__ import annotations

import math


def learning_rate(step: int, *, peak: float, total: int, warmup: int, floor_ratio: float = 0.1) -> float:
    """The rate for optimiser step ``step`` (0-based) of ``total``.

    Warm-up rises linearly from ``peak / warmup`` to ``peak`` over ``warmup``
    steps; the cosine then falls to ``peak * floor_ratio`` at ``total`` and
    stays there if a run is extended beyond it.
    """
    floor = peak * floor_ratio
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    if step >= total:
        return floor
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
