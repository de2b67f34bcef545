"""The domain-shift diffusion process of DoSSR (Cui et al., NeurIPS 2024) and its DoS-SDE solvers.

The forward process moves the mean of ``x_t`` from the HR image ``x0``
(``t = 0``) to the pre-restored LR image ``x_hat`` (``t >= t1``) while the
noise follows an ordinary DDPM schedule (spec 2.2):

    x_t = sqrt(abar_t) ((1 - eta_t) x0 + eta_t x_hat) + sigma_t eps,   sigma_t = sqrt(1 - abar_t)

so sampling starts at ``t1 - 1`` from the noised ``x_hat`` alone. In shifted
coordinates ``y_t = x_t / a_t`` with ``a_t = sqrt(abar_t) (1 - eta_t)``,
``lambda_t = sigma_t / a_t`` and ``kappa_t = eta_t / (1 - eta_t)`` the reverse
SDE has an exact solution (spec 2.4); the solvers of order 1, 2 and 3 are its
Taylor truncations in ``lambda`` (spec 2.5), with a multistep warm-up.

Nothing here knows about networks or images: a sampler gets a closure
``(x_t, i) -> x0_hat`` at 0-based step index ``i`` (the index the network's
time embedding receives). Indices follow the official code: ``0..T-1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sr_desk.diffusion.samplers.base import Randomness, standard_normal_like
from sr_desk.diffusion.schedule import NoiseSchedule, from_betas

__all__ = [
    "DomainShiftProcess",
    "SOLVER_ORDERS",
    "X0Predictor",
    "ddim_sample",
    "dos_sde_sample",
    "scaled_linear_betas",
    "shift_sequence",
    "solver_coefficients",
    "wavelet_color_fix",
]

X0Predictor = Callable[[torch.Tensor, int], torch.Tensor]
"""``(x_t, i) -> x0_hat``: the network's prediction of the clean image at step index ``i``."""

StepCallback = Callable[[int, int, torch.Tensor], None]
"""``(call_number, total_calls, x0_hat)`` after each network call (1-based); raising cancels."""

SOLVER_ORDERS = (1, 2, 3)


def scaled_linear_betas(timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """Stable Diffusion's "scaled linear" betas: squares of a linear ramp of their roots (spec 2.1)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=torch.float64) ** 2


def shift_sequence(timesteps: int, t1: int) -> torch.Tensor:
    """eta: a sin^2 ramp over ``[0, t1)`` from just above 0 to just below 1, then 1 (``trunc`` in the code).

    The ramp's ends (``u`` from 0.001 to 0.999) keep eta strictly inside
    (0, 1) below ``t1``, so ``lambda`` and ``kappa`` stay finite on every step
    the sampler visits (spec 8.5).
    """
    if not 2 <= t1 <= timesteps:
        raise ValueError(f"t1 must be in 2..{timesteps}, got {t1}")
    u = torch.linspace(0.001, 0.999, t1, dtype=torch.float64)
    ramp = torch.sin(math.pi * u / 2) ** 2
    return torch.cat([ramp, torch.ones(timesteps - t1, dtype=torch.float64)])


@dataclass(frozen=True, eq=False)
class DomainShiftProcess:
    """The noise schedule, the shift sequence eta and the start step ``t1``; every coefficient in float64."""

    schedule: NoiseSchedule
    eta: torch.Tensor
    t1: int

    @classmethod
    def paper(cls, timesteps: int = 1000, t1: int | None = None) -> DomainShiftProcess:
        """The paper's process: SD 2.1's betas over ``timesteps`` and ``t1 = T // 2`` unless given."""
        t1 = timesteps // 2 if t1 is None else t1
        return cls(from_betas(scaled_linear_betas(timesteps)), shift_sequence(timesteps, t1), t1)

    @property
    def T(self) -> int:  # noqa: N802 (the papers' name)
        return self.schedule.T

    @property
    def start(self) -> int:
        """The index sampling starts at: ``t1 - 1``, the last one whose eta is below 1."""
        return self.t1 - 1

    def abar(self, i: int) -> float:
        return float(self.schedule.alphas_cumprod[i])

    def sigma(self, i: int) -> float:
        return math.sqrt(1.0 - self.abar(i))

    def a(self, i: int) -> float:
        return math.sqrt(self.abar(i)) * (1.0 - float(self.eta[i]))

    def lam(self, i: int) -> float:
        """``sigma / a``: grows with ``i``, infinite from ``t1`` on."""
        a = self.a(i)
        return math.inf if a == 0.0 else self.sigma(i) / a

    def kappa(self, i: int) -> float:
        eta = float(self.eta[i])
        return math.inf if eta >= 1.0 else eta / (1.0 - eta)

    # -- the forward process (spec 2.2) ---------------------------------------------------------

    def _per_item(self, values: torch.Tensor, i: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if isinstance(i, int):
            return values[i].to(like.dtype).to(like.device)
        return values.to(like.device)[i].to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def mean(self, x0: torch.Tensor, x_hat: torch.Tensor, i: int | torch.Tensor) -> torch.Tensor:
        """``sqrt(abar_i) ((1 - eta_i) x0 + eta_i x_hat)``; ``i`` an int or one index per batch item."""
        eta = self._per_item(self.eta, i, x0)
        return self._per_item(self.schedule.alphas_cumprod.sqrt(), i, x0) * (x0 + eta * (x_hat - x0))

    def q_sample(self, x0: torch.Tensor, x_hat: torch.Tensor, i: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of ``x_i`` given ``x0`` and ``x_hat`` (the marginal)."""
        sigma = self._per_item((1 - self.schedule.alphas_cumprod).sqrt(), i, x0)
        return self.mean(x0, x_hat, i) + sigma * noise

    def step_forward(
        self, x_prev: torch.Tensor, x0: torch.Tensor, x_hat: torch.Tensor, i: int, noise: torch.Tensor
    ) -> torch.Tensor:
        """One forward step ``x_{i-1} -> x_i`` (``i >= 1``): mean ``sqrt(alpha_i) x_{i-1} + sqrt(abar_i) d_eta (x_hat - x0)``."""
        if i < 1:
            raise ValueError("the first forward step starts from x0: use q_sample(..., 0, ...)")
        alpha, beta = float(self.schedule.alphas[i]), float(self.schedule.betas[i])
        shift = math.sqrt(self.abar(i)) * float(self.eta[i] - self.eta[i - 1])
        return math.sqrt(alpha) * x_prev + shift * (x_hat - x0) + math.sqrt(beta) * noise

    def grid(self, steps: int) -> list[int]:
        """``steps + 1`` indices spread evenly over ``[0, t1 - 1]``, ascending (spec 2.6: 5 -> 0,100,200,299,399,499)."""
        if not 1 <= steps <= self.start:
            raise ValueError(f"steps must be in 1..{self.start}, got {steps}")
        indices = [round(k * self.start / steps) for k in range(steps + 1)]
        return indices


def solver_coefficients(lam_t: float, lam_s: float) -> tuple[float, float, float]:
    """``(c0, c1, c2)``: ``lam_s^2 * integral_{lam_s}^{lam_t} 2 lam^-3 (lam - lam_t)^k / k! dlam`` for k = 0, 1, 2.

    In closed form (spec 2.5): ``1 - r^2``, ``-(lam_t - lam_s)^2 / lam_t`` and
    ``(lam_t - 3 lam_s)(lam_t - lam_s) / 2 - lam_s^2 ln r`` with
    ``r = lam_s / lam_t``. ``lam_t`` may be infinite (the first step from
    ``t1``): then only ``c0 = 1`` survives.
    """
    if math.isinf(lam_t):
        return 1.0, 0.0, 0.0
    r = lam_s / lam_t
    c0 = 1.0 - r * r
    c1 = -((lam_t - lam_s) ** 2) / lam_t
    c2 = (lam_t - 3 * lam_s) * (lam_t - lam_s) / 2 - lam_s * lam_s * math.log(r)
    return c0, c1, c2


@torch.no_grad()
def dos_sde_sample(
    predict_x0: X0Predictor,
    x_hat: torch.Tensor,
    process: DomainShiftProcess,
    steps: int = 5,
    order: int = 3,
    generator: Randomness = None,
    *,
    final_noise: bool = False,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """The DoS-SDE solver of ``order`` over ``steps`` network calls, from the noised ``x_hat`` at ``t1 - 1``.

    Step k uses order ``min(order, k)`` (the multistep warm-up); fresh noise
    enters every update. ``final_noise``: the official code adds noise on the
    last update too (std ``sigma_0 sqrt(1 - r^2)``, about 0.03 in ``[-1, 1]``
    units); without it the last update returns its mean, which is what a
    user who zooms in on a photo wants (the state at index 0 is otherwise
    noised at that level).
    """
    if order not in SOLVER_ORDERS:
        raise ValueError(f"order must be one of {SOLVER_ORDERS}, got {order}")
    grid = process.grid(steps)
    top = grid[-1]
    x = math.sqrt(process.abar(top)) * x_hat + process.sigma(top) * standard_normal_like(x_hat, generator)
    d0_prev: torch.Tensor | None = None
    d1_prev: torch.Tensor | None = None
    lams: list[float] = []  # lambda at every step index visited so far, newest last
    for call, j in enumerate(range(len(grid) - 1, 0, -1), start=1):
        t, s = grid[j], grid[j - 1]
        lam_t, lam_s = process.lam(t), process.lam(s)
        d0 = predict_x0(x, t)
        if callback is not None:
            callback(call, steps, d0)
        c0, c1, c2 = solver_coefficients(lam_t, lam_s)
        r2 = 0.0 if math.isinf(lam_t) else (lam_s / lam_t) ** 2
        # r^2 / a_t and r^2 kappa_t are formed as numbers first: a_t is about 1e-6 at the top of the grid.
        kappa_t = 0.0 if r2 == 0.0 else process.kappa(t)
        y = (r2 / process.a(t) if r2 else 0.0) * x + (process.kappa(s) - r2 * kappa_t) * x_hat + c0 * d0
        d1 = None
        if min(order, call) >= 2 and d0_prev is not None:
            d1 = (d0 - d0_prev) / (lam_t - lams[-1])
            y = y + c1 * d1
            if min(order, call) >= 3 and d1_prev is not None:
                d2 = 2 * (d1 - d1_prev) / (lam_t - lams[-2])
                y = y + c2 * d2
        last = s == grid[0]
        if not last or final_noise:
            y = y + lam_s * math.sqrt(1 - r2) * standard_normal_like(x, generator)
        x = process.a(s) * y
        d0_prev, d1_prev = d0, d1
        lams.append(lam_t)
    return x


@torch.no_grad()
def ddim_sample(
    predict_x0: X0Predictor,
    x_hat: torch.Tensor,
    process: DomainShiftProcess,
    steps: int = 5,
    eta: float = 0.0,
    generator: Randomness = None,
    *,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Plain DDIM on the same grid and the same network, blind to the domain shift (the paper's baseline, 7.2).

    From the same start, each update treats ``x_t`` as an ordinary DDPM state
    (``eps`` re-derived with the plain relation of spec 2.3) and ignores the
    shift guidance term; ``eta = 0`` is deterministic. After the last call the
    x0 prediction is returned, as DDIM's final step does.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta!r}")
    grid = process.grid(steps)
    top = grid[-1]
    x = math.sqrt(process.abar(top)) * x_hat + process.sigma(top) * standard_normal_like(x_hat, generator)
    for call, j in enumerate(range(len(grid) - 1, 0, -1), start=1):
        t = grid[j]
        x0 = predict_x0(x, t)
        if callback is not None:
            callback(call, steps, x0)
        if j == 1:
            return x0
        s = grid[j - 1]
        abar_t, abar_s = process.abar(t), process.abar(s)
        eps = (x - math.sqrt(abar_t) * x0) / math.sqrt(1 - abar_t)
        noise_std = eta * math.sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))
        x = math.sqrt(abar_s) * x0 + math.sqrt(max(0.0, 1 - abar_s - noise_std**2)) * eps
        if noise_std > 0:
            x = x + noise_std * standard_normal_like(x, generator)
    return x


def _binomial_blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    kernel = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    padded = torch.nn.functional.pad(x, (dilation,) * 4, mode="replicate")
    return torch.nn.functional.conv2d(padded, kernel, groups=x.shape[1], dilation=dilation)


def wavelet_low(x: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """The low band of an a-trous wavelet split: ``levels`` binomial blurs at dilations 1, 2, 4, ..."""
    for level in range(levels):
        x = _binomial_blur(x, 2**level)
    return x


def wavelet_color_fix(image: torch.Tensor, reference: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """The official colour fix (spec 5.8): ``image``'s high band over ``reference``'s low band.

    Both ``N x C x H x W`` of one size. A weak model's colour drift lives in
    the low band, which the pre-restored input gets right.
    """
    return image - wavelet_low(image, levels) + wavelet_low(reference, levels)
