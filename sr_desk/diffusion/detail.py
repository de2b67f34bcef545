"""How a diffusion method turns the shared "Detail" control (``sr_desk.api.detail_param``) into its own means.

Each built-in method maps detail through a :class:`DetailCurve` whose anchor
points were chosen on the perception-distortion sweep (``bench/quality.py
--sweep detail``; the figures are in each model card).

The usual means is the **noise temperature** (:class:`TemperedNoise`): every
draw of the sampler, the starting noise and the fresh noise of each step,
scaled by ``tau``. At ``tau = 0`` the sampler follows the mean path from the
condition alone, close to the network's best guess in mean squared error:
the smoothest, most faithful result, and the same for every seed. At
``tau = 1`` it samples as trained; above 1 it overshoots into more texture
until the network's predictions break down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sr_desk.diffusion.noise import NoiseSource

__all__ = ["DetailCurve", "TemperedNoise"]


@dataclass(frozen=True)
class DetailCurve:
    """A method setting as a function of detail: straight lines through measured anchor points.

    ``points`` are ``(detail, setting)`` pairs with detail rising from 0 to
    1 and the setting never falling, so more detail never means less of the
    means that gives it (what the monotonicity tests rely on).
    """

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        details = [d for d, _ in self.points]
        settings = [s for _, s in self.points]
        if len(self.points) < 2 or details[0] != 0.0 or details[-1] != 1.0:
            raise ValueError("a detail curve runs from detail 0 to detail 1 through at least two points")
        if any(b <= a for a, b in zip(details, details[1:], strict=False)):
            raise ValueError(f"a detail curve's detail values must rise, got {details}")
        if any(b < a for a, b in zip(settings, settings[1:], strict=False)):
            raise ValueError(f"a detail curve's settings must not fall, got {settings}")

    def at(self, detail: float) -> float:
        """The setting at ``detail`` (clamped to [0, 1])."""
        detail = min(1.0, max(0.0, float(detail)))
        for (d0, s0), (d1, s1) in zip(self.points, self.points[1:], strict=False):
            if detail <= d1:
                return s0 + (s1 - s0) * (detail - d0) / (d1 - d0)
        return self.points[-1][1]


class TemperedNoise:
    """A noise source whose every draw is scaled by ``temperature`` (the stream itself is unchanged).

    The same seed at two temperatures draws the same directions, so moving
    the Detail slider changes how much texture appears, not which texture.
    """

    def __init__(self, inner: NoiseSource, temperature: float):
        if not temperature >= 0:
            raise ValueError(f"a noise temperature must be 0 or more, got {temperature!r}")
        self.inner, self.temperature = inner, float(temperature)

    def __call__(self, shape: Sequence[int], *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        noise = self.inner(shape, device=device, dtype=dtype)
        return noise if self.temperature == 1.0 else noise * self.temperature
