"""Resolution-degradation ("cold") diffusion, the process DTLS runs instead of noise.

Level ``t`` of the process is the image shrunk to ``1 - t / levels`` of its
size and enlarged back (``levels`` = 32 in both DTLS releases: 16 -> 128 with
stride 4 and 32 -> 512 with stride 16 both shrink to ``HR - t * stride``, which
is ``HR * (1 - t / 32)``). Level 0 is the image itself; an input ``s`` times
smaller than the output sits at level ``levels * (1 - 1 / s)``: 24 for x4,
28 for x8, 30 for x16. Stating the levels as fractions of the output makes
one model serve any output size, square or not.

``D(x, t)`` is linear in ``x`` (fixed resampling weights), which is what makes
the DTLS momentum sampler collapse to two network calls (:func:`two_call_sample`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "DOWNSCALE_KERNELS",
    "Degradation",
    "Predictor",
    "chain_sample",
    "level_size",
    "momentum_sample",
    "start_level",
    "two_call_sample",
]

#: ``bilinear``: the official code's (no antialiasing, spec 3.2); ``bicubic-aa``: an antialiased bicubic
#: shrink, the kernel real photos (and the MATLAB-bicubic benchmarks) are made with.
DOWNSCALE_KERNELS = ("bilinear", "bicubic-aa")

#: ``predict(x, t)``: the clean image the network sees in ``x``, a state at level ``t``.
Predictor = Callable[[torch.Tensor, int], torch.Tensor]
#: ``callback(step, total, prediction)`` after every network call.
StepCallback = Callable[[int, int, torch.Tensor], None]


def level_size(size: tuple[int, int], t: float, levels: int) -> tuple[int, int]:
    """``(height, width)`` of level ``t`` for an image of ``size`` (``(height, width)``), at least 1 x 1."""
    if not 0 <= t <= levels:
        raise ValueError(f"level {t} is outside 0..{levels}")
    ratio = 1.0 - t / levels
    return max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio))


def start_level(scale: float, levels: int) -> int:
    """The level an input ``scale`` times smaller than the output starts at (rounded, at least 1)."""
    if scale <= 1:
        raise ValueError(f"scale must be above 1, got {scale:g}")
    return min(levels - 1, max(1, round(levels * (1.0 - 1.0 / scale))))


@dataclass(frozen=True)
class Degradation:
    """``D(x, t)``: shrink to level ``t``'s size, enlarge bilinearly back (no clamping: D stays linear)."""

    levels: int = 32
    downscale: str = "bilinear"

    def __post_init__(self) -> None:
        if self.downscale not in DOWNSCALE_KERNELS:
            raise ValueError(f"downscale must be one of {', '.join(DOWNSCALE_KERNELS)}, got {self.downscale!r}")
        if self.levels < 2:
            raise ValueError("levels must be at least 2")

    def shrink(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == size:
            return x
        if self.downscale == "bilinear":
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)

    @staticmethod
    def enlarge(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == size:
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        if t == 0:
            return x
        size = tuple(x.shape[-2:])
        return self.enlarge(self.shrink(x, level_size(size, t, self.levels)), size)  # type: ignore[arg-type]

    def batch(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``D(x[i], t[i])`` for a batch with one level per image (one resize pair per distinct level)."""
        out = x.clone()
        for level in torch.unique(t).tolist():
            chosen = (t == level).nonzero().flatten()
            out[chosen] = self(x[chosen], int(level))
        return out


def momentum_sample(
    predict: Predictor,
    start: torch.Tensor,
    t0: int,
    degrade: Degradation,
    *,
    momentum: bool = True,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """DTLS's sampler as the official code runs it (spec 5.1), from the state ``start`` at level ``t0``.

    Each step predicts the clean image ``R``, accumulates ``M += previous R - R``
    and moves to ``D(R, t - 1)``; the network input is the state plus ``D(M, t)``.
    ``momentum=False`` is the plain chain (the paper's Table 4, variant i).
    """
    x, previous, accumulated = start, None, torch.zeros_like(start)
    prediction = start
    for step, t in enumerate(range(t0, 0, -1), start=1):
        shift = degrade(accumulated, t) if (momentum and previous is not None) else 0
        prediction = predict(x + shift, t)
        if previous is None:
            previous = prediction
        accumulated = accumulated + (previous - prediction)
        previous = prediction
        x = degrade(prediction, t - 1)
        if callback is not None:
            callback(step, t0, prediction)
    return prediction


def two_call_sample(
    predict: Predictor,
    start: torch.Tensor,
    t0: int,
    degrade: Degradation,
    *,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """The official momentum sampler in two network calls (spec 5.2): equal to it up to rounding.

    With a linear ``D`` the momentum telescopes: after the first step the
    network's input at every level ``t`` is ``D(R_first, t)``, so only the first
    prediction and the last call (at level 1) reach the output.
    """
    first = predict(start, t0)
    if callback is not None:
        callback(1, 2, first)
    if t0 == 1:
        return first
    last = predict(degrade(first, 1), 1)
    if callback is not None:
        callback(2, 2, last)
    return last


def chain_sample(
    predict: Predictor, start: torch.Tensor, t0: int, degrade: Degradation, *, callback: StepCallback | None = None
) -> torch.Tensor:
    """The chain without momentum: ``x <- D(U(x, t), t - 1)``."""
    return momentum_sample(predict, start, t0, degrade, momentum=False, callback=callback)
