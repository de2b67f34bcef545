"""Ancestral (DDPM) sampling exactly as SRDiff's official ``p_sample`` loop does it.

At every index i from ``start`` down to 0: predict eps, turn it into a clamped
x0, take the mean of the posterior q(x_{i-1} | x_i, x0) and add fresh noise
with the posterior's standard deviation (none at i = 0, whose output is the
mean itself).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from sr_desk.diffusion.samplers.base import Evaluator, Randomness, Sampler, standard_normal_like
from sr_desk.diffusion.schedule import NoiseSchedule

__all__ = ["AncestralSampler"]


class AncestralSampler(Sampler):
    """The reference sampler: every step index from ``start`` down to 0, one network call each, stochastic."""

    name: ClassVar[str] = "ancestral"

    def __init__(
        self, schedule: NoiseSchedule, steps: int | None = None, *, clip_x0: bool = True, **options: Any
    ) -> None:
        if steps not in (None, schedule.T):
            raise ValueError(f"the ancestral sampler visits every step: steps must be None or {schedule.T}")
        super().__init__(schedule, steps, clip_x0=clip_x0, **options)

    def fresh_draws(self, indices: list[int]) -> int:
        """One draw per step above index 0."""
        return sum(1 for i in indices if i > 0)

    def _run(self, model: Evaluator, x: torch.Tensor, indices: list[int], generator: Randomness) -> torch.Tensor:
        for i in indices:
            x0_hat = model.x0(x, i)
            mean, _, log_variance = self.schedule.posterior(x0_hat, x, i)
            if i > 0:
                # exp(0.5 log var) rather than sqrt(var): the official code's form, same value for i > 0.
                x = mean + (0.5 * log_variance).exp() * standard_normal_like(x, generator)
            else:
                x = mean
        return x
