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
    return cosine_rate((step - warmup) / max(1, total - warmup), peak=peak, floor_ratio=floor_ratio)


def time_paced_rate(step: int, fraction: float, *, peak: float, warmup: int, floor_ratio: float = 0.1) -> float:
    """The rate when a run is paced by its time budget rather than a step count.

    A GPU is lent for minutes, and how many steps fit is only known once the
    run is going; the cosine therefore follows ``fraction``, the share of the
    budget spent, so that it reaches its floor when the time runs out.
    Warm-up still counts steps.
    """
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    return cosine_rate(fraction, peak=peak, floor_ratio=floor_ratio)


def cosine_rate(progress: float, *, peak: float, floor_ratio: float = 0.1) -> float:
    """Half a cosine from ``peak`` at progress 0 to ``peak * floor_ratio`` at progress 1 (clamped)."""
    floor = peak * floor_ratio
    progress = min(1.0, max(0.0, progress))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
