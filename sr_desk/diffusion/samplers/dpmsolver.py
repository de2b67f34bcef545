"""DPM-Solver++(2M) (Lu et al. 2022): a deterministic, second-order multistep ODE sampler.

It integrates the diffusion probability-flow ODE in the data-prediction form over
lambda = log(sqrt(abar) / sqrt(1 - abar)) (half the log-SNR). With
alpha = sqrt(abar), sigma = sqrt(1 - abar) and h = lambda_next - lambda_now,
each step from index s to the next visited index t is

    x_t = (sigma_t / sigma_s) x_s - alpha_t (exp(-h) - 1) D

where D = x0_s on the first step (first order: DDIM with eta = 0), and
afterwards the linear extrapolation of the last two x0 predictions over lambda,
D = (1 + 1/(2r)) x0_s - 1/(2r) x0_prev with r = h_prev / h. The final step goes
to the clean sample (lambda = +inf, sigma = 0): its first-order limit is the
last x0 prediction itself, and the second-order term vanishes there (r -> 0
makes the formula singular, which is why the official solver also ends with a
lower-order step).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from sr_desk.diffusion.samplers.base import Evaluator, Randomness, Sampler

__all__ = ["DPMSolverPlusPlus2MSampler"]


class DPMSolverPlusPlus2MSampler(Sampler):
    """DPM-Solver++(2M) over ``steps`` evenly spread indices; draws no noise."""

    name: ClassVar[str] = "dpm++2m"

    def _run(self, model: Evaluator, x: torch.Tensor, indices: list[int], generator: Randomness) -> torch.Tensor:
        abar = self.schedule.alphas_cumprod.tolist()
        previous: tuple[torch.Tensor, float] | None = None  # (x0 prediction, its lambda)
        for s, t in zip(indices, indices[1:], strict=False):
            x0_hat = model.x0(x, s)
            lam_s, lam_t = _half_log_snr(abar[s]), _half_log_snr(abar[t])
            h = lam_t - lam_s
            if previous is None:
                direction = x0_hat
            else:
                x0_prev, lam_prev = previous
                half_over_r = 0.5 * h / (lam_s - lam_prev)  # 1 / (2 r), r = h_prev / h
                direction = (1 + half_over_r) * x0_hat - half_over_r * x0_prev
            sigma_ratio = math.sqrt((1 - abar[t]) / (1 - abar[s]))
            x = sigma_ratio * x - math.sqrt(abar[t]) * math.expm1(-h) * direction
            previous = (x0_hat, lam_s)
        # The step to the clean sample (lambda = +inf): its first-order limit is the x0 prediction.
        return model.x0(x, indices[-1])


def _half_log_snr(abar: float) -> float:
    """lambda = log(alpha / sigma) = 0.5 * (log abar - log(1 - abar))."""
    return 0.5 * (math.log(abar) - math.log1p(-abar))
