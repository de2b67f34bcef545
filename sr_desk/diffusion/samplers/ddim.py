"""DDIM (Song, Meng & Ermon 2021) with its eta parameter, on a subset of the steps.

From index i to the next visited index j (or to the clean sample, abar = 1,
after the last one), with x0 the clamped prediction and eps re-derived from it:

    sigma = eta * sqrt((1 - abar_j)/(1 - abar_i) * (1 - abar_i/abar_j))
    x_j   = sqrt(abar_j) x0 + sqrt(1 - abar_j - sigma^2) eps + sigma z

eta = 0 is the deterministic DDIM; eta = 1 over every step is algebraically
the ancestral (DDPM) sampler, clamp included.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from sr_desk.diffusion.samplers.base import Evaluator, Randomness, Sampler, standard_normal_like
from sr_desk.diffusion.schedule import NoiseSchedule

__all__ = ["DDIMSampler"]


class DDIMSampler(Sampler):
    """DDIM over ``steps`` evenly spread indices; ``eta`` in [0, 1] sets how much fresh noise each step adds."""

    name: ClassVar[str] = "ddim"

    def __init__(
        self,
        schedule: NoiseSchedule,
        steps: int | None = None,
        *,
        clip_x0: bool = True,
        eta: float = 0.0,
        **options: Any,
    ) -> None:
        if not 0.0 <= eta <= 1.0:
            # eta > 1 can make 1 - abar_j - sigma^2 negative.
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        super().__init__(schedule, steps, clip_x0=clip_x0, **options)
        self.eta = float(eta)

    def options(self) -> dict[str, Any]:
        return {"eta": self.eta}

    def fresh_draws(self, indices: list[int]) -> int:
        """One draw per step but the last (which lands on the clean sample, sigma 0), when eta > 0."""
        return len(indices) - 1 if self.eta > 0 else 0

    def _run(self, model: Evaluator, x: torch.Tensor, indices: list[int], generator: Randomness) -> torch.Tensor:
        abar = self.schedule.alphas_cumprod.tolist()
        for k, i in enumerate(indices):
            x0_hat = model.x0(x, i)
            # Re-derive eps from the *clamped* x0: the step must move along the noise that
            # is consistent with the x0 it uses, otherwise a clamp would shift x by
            # sqrt(abar_j) (x0_clamped - x0) without the matching change in the noise part.
            # This is what makes eta = 1 reproduce SRDiff's clamped posterior mean exactly.
            eps = self.schedule.eps_from_x0(x, i, x0_hat)
            abar_next = abar[indices[k + 1]] if k + 1 < len(indices) else 1.0
            x = self._step(x0_hat, eps, abar[i], abar_next, generator)
        return x

    def _step(
        self, x0_hat: torch.Tensor, eps: torch.Tensor, abar: float, abar_next: float, generator: Randomness
    ) -> torch.Tensor:
        """One DDIM update from noise level ``abar`` to ``abar_next`` (1.0: the clean sample)."""
        sigma = self.eta * math.sqrt(max(0.0, (1 - abar_next) / (1 - abar) * (1 - abar / abar_next)))
        x = math.sqrt(abar_next) * x0_hat + math.sqrt(max(0.0, 1 - abar_next - sigma**2)) * eps
        if sigma > 0:
            x = x + sigma * standard_normal_like(x, generator)
        return x
