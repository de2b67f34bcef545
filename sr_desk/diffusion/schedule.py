"""Noise schedules of discrete-time diffusion models (DDPM family) and their closed forms.

Everything is computed once in float64 and kept as 1-D tensors of length T.
The per-step helpers (:meth:`NoiseSchedule.q_sample`, :meth:`~NoiseSchedule.predict_x0`,
...) cast the coefficient they need to the dtype and device of their input, so
a float32 model on a GPU gets float32 arithmetic with coefficients that were
rounded once from float64 -- the same numbers the official SRDiff code stores
in its float32 buffers.

Index convention: entry ``i`` (0-based, ``i = 0..T-1``) holds the paper's value
at step ``t = i + 1``; ``alphas_cumprod_prev[0]`` is the paper's abar_0 := 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch

__all__ = [
    "NoiseSchedule", "cosine_schedule", "from_betas", "from_scheduler_config", "linear_schedule", "vp_coarse_schedule",
]

Index = int | torch.Tensor
"""A step index: a Python int (one step for the whole batch) or a 1-D integer tensor (one per batch item)."""

LOG_VARIANCE_FLOOR = 1e-20
"""The posterior variance at i = 0 is exactly 0; its log is taken of this instead (as the official code does)."""

OFFICIAL_BUFFER_NAMES = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)
"""The schedule buffers of the official SRDiff ``GaussianDiffusion`` state dict, in its order."""


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A variance schedule beta_1..beta_T and every quantity derived from it (float64, length T).

    Build one with :func:`cosine_schedule`, :func:`linear_schedule`, :func:`from_betas`
    or :meth:`from_config`, not with the constructor. The tensors are shared, not
    copied: treat them as read-only. Two schedules are equal when their configs are.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    config_json: str = field(repr=False)
    """The canonical JSON of :meth:`to_config`; a string so the schedule stays immutable and hashable."""

    def __post_init__(self) -> None:
        length = self.betas.shape[0] if self.betas.ndim == 1 else 0
        if length < 1:
            raise ValueError("a schedule needs a non-empty 1-D betas tensor")
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, torch.Tensor) and (value.shape != (length,) or value.dtype != torch.float64):
                got = f"{value.dtype} {tuple(value.shape)}"
                raise ValueError(f"{item.name} must be float64 of shape ({length},), got {got}")

    # -- identity ---------------------------------------------------------------------------

    @property
    def T(self) -> int:  # noqa: N802 (the papers' name)
        """The number of diffusion steps."""
        return int(self.betas.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoiseSchedule):
            return NotImplemented
        return self.config_json == other.config_json

    def __hash__(self) -> int:
        return hash(self.config_json)

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict from which :meth:`from_config` rebuilds this schedule exactly."""
        return json.loads(self.config_json)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NoiseSchedule:
        """The schedule described by ``config`` (a dict made by :meth:`to_config`)."""
        params = dict(config)
        kind = params.pop("kind", None)
        builders = {"cosine": cosine_schedule, "linear": linear_schedule, "betas": from_betas,
                    "vp_coarse": vp_coarse_schedule}
        if kind not in builders:
            raise ValueError(f"unknown schedule kind {kind!r}; expected one of {sorted(builders)}")
        try:
            return builders[kind](**params)
        except TypeError as error:
            raise ValueError(f"bad {kind} schedule config {config!r}: {error}") from None

    # -- per-step closed forms ----------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, i: Index, noise: torch.Tensor) -> torch.Tensor:
        """A draw from q(x_i | x_0): ``sqrt(abar_i) x0 + sqrt(1 - abar_i) noise``."""
        abar = self.alphas_cumprod
        return self._coef(abar.sqrt(), i, x0) * x0 + self._coef((1 - abar).sqrt(), i, x0) * noise

    def predict_x0(self, x_t: torch.Tensor, i: Index, eps: torch.Tensor) -> torch.Tensor:
        """The x0 that, noised with ``eps`` at step i, gives ``x_t`` (inverse of :meth:`q_sample`)."""
        abar = self.alphas_cumprod
        return self._coef((1 / abar).sqrt(), i, x_t) * x_t - self._coef((1 / abar - 1).sqrt(), i, x_t) * eps

    def eps_from_x0(self, x_t: torch.Tensor, i: Index, x0: torch.Tensor) -> torch.Tensor:
        """The noise that takes ``x0`` to ``x_t`` at step i (the other inverse of :meth:`q_sample`)."""
        abar = self.alphas_cumprod
        return (x_t - self._coef(abar.sqrt(), i, x_t) * x0) / self._coef((1 - abar).sqrt(), i, x_t)

    def posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, i: Index
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, variance, log_variance)`` of q(x_{i-1} | x_i, x_0); "x_{-1}" is the clean sample.

        The variance and log-variance are broadcastable to ``x_t`` (0-dim for an int ``i``).
        """
        mean = self._coef(self.posterior_mean_coef1, i, x_t) * x0 + self._coef(self.posterior_mean_coef2, i, x_t) * x_t
        variance = self._coef(self.posterior_variance, i, x_t)
        log_variance = self._coef(self.posterior_log_variance_clipped, i, x_t)
        return mean, variance, log_variance

    def official_buffers(self) -> dict[str, torch.Tensor]:
        """The 12 schedule buffers of an official SRDiff checkpoint, as float32, for checking one against ours."""
        abar = self.alphas_cumprod
        values = {
            "betas": self.betas,
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": self.alphas_cumprod_prev,
            "sqrt_alphas_cumprod": abar.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
            "log_one_minus_alphas_cumprod": (1 - abar).log(),
            "sqrt_recip_alphas_cumprod": (1 / abar).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1 / abar - 1).sqrt(),
            "posterior_variance": self.posterior_variance,
            "posterior_log_variance_clipped": self.posterior_log_variance_clipped,
            "posterior_mean_coef1": self.posterior_mean_coef1,
            "posterior_mean_coef2": self.posterior_mean_coef2,
        }
        return {name: values[name].to(torch.float32) for name in OFFICIAL_BUFFER_NAMES}

    def _coef(self, values: torch.Tensor, i: Index, like: torch.Tensor) -> torch.Tensor:
        """``values[i]`` in ``like``'s dtype and device, shaped to broadcast against it.

        An int gives a 0-dim tensor; a 1-D index tensor (one step per batch item, as in
        training) gives shape (B, 1, ..., 1).
        """
        if isinstance(i, torch.Tensor):
            index = i.to(device=values.device, dtype=torch.long)
            if index.ndim != 1 or (index.numel() and (index.min() < 0 or index.max() >= self.T)):
                raise IndexError(f"step indices must be a 1-D tensor in [0, {self.T - 1}]")
            picked = values[index].reshape(-1, *([1] * (like.ndim - 1)))
        else:
            if isinstance(i, bool) or not 0 <= i < self.T:
                raise IndexError(f"step index {i!r} outside [0, {self.T - 1}]")
            picked = values[int(i)]
        return picked.to(device=like.device, dtype=like.dtype)


# -- constructors -------------------------------------------------------------------------------


def from_betas(betas: torch.Tensor | list[float] | tuple[float, ...]) -> NoiseSchedule:
    """The schedule with these betas (each in (0, 1)); every derived quantity is computed in float64."""
    return _build(torch.as_tensor(betas, dtype=torch.float64), None)


def cosine_schedule(timesteps: int = 100, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """The cosine schedule (Nichol & Dhariwal 2021) as SRDiff's ``cosine_beta_schedule`` computes it.

    ``f(u) = cos^2(((u/T) + s)/(1 + s) * pi/2)``, ``abar_raw(u) = f(u)/f(0)``,
    ``beta_t = 1 - abar_raw(t)/abar_raw(t-1)`` clipped to [0, max_beta]. The clip only
    touches the last step (raw beta_T = 1), which is why abar_T is 2.4e-7 and not 0.
    """
    _check_timesteps(timesteps)
    if not 0 < max_beta < 1:
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta}")
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((u + s) / (1 + s) * (math.pi / 2)) ** 2
    abar_raw = f / f[0]
    betas = (1 - abar_raw[1:] / abar_raw[:-1]).clamp(0.0, max_beta)
    config = {"kind": "cosine", "timesteps": int(timesteps), "s": float(s), "max_beta": float(max_beta)}
    return _build(betas, config)


def linear_schedule(timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """Betas evenly spaced from ``beta_start`` to ``beta_end`` (DDPM's schedule with its defaults)."""
    _check_timesteps(timesteps)
    betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    config = {
        "kind": "linear",
        "timesteps": int(timesteps),
        "beta_start": float(beta_start),
        "beta_end": float(beta_end),
    }
    return _build(betas, config)


def vp_coarse_schedule(
    steps: int = 4, beta_min: float = 0.1, beta_max: float = 20.0, eps_small: float = 1e-3
) -> NoiseSchedule:
    """A few-step schedule cut from the continuous VP process, as DDGAN (and LDDPM after it) uses.

    With ``L(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2`` and
    ``t_k = eps + (1 - eps) k / steps``, the marginal's abar at ``t_k`` is
    ``exp(2 L(t_k))``; step ``k`` (1-based) has ``beta_k = 1 - abar(t_k) / abar(t_{k-1})``,
    so ``alphas_cumprod[k-1] = exp(2 L(t_k) - 2 L(t_0))``. DDGAN's defaults:
    4 steps, beta_min 0.1, beta_max 20.
    """
    _check_timesteps(steps)
    t = torch.arange(steps + 1, dtype=torch.float64) / steps * (1 - eps_small) + eps_small
    log_mean = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    abar = torch.exp(2 * log_mean)
    betas = 1 - abar[1:] / abar[:-1]
    config = {"kind": "vp_coarse", "steps": int(steps), "beta_min": float(beta_min), "beta_max": float(beta_max),
              "eps_small": float(eps_small)}
    return _build(betas, config)


def scaled_linear_schedule(timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> NoiseSchedule:
    """Betas whose square roots are evenly spaced (Stable Diffusion's "scaled_linear")."""
    _check_timesteps(timesteps)
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=torch.float64) ** 2
    return _build(betas, None)


def from_scheduler_config(config: dict[str, Any]) -> NoiseSchedule:
    """The schedule of a diffusers ``scheduler_config.json`` (DDPM/DDIM keys; defaults as in diffusers).

    ``beta_schedule`` ``linear``, ``scaled_linear`` or ``squaredcos_cap_v2``
    (the cosine schedule with s = 0.008 and betas capped at 0.999), or
    ``trained_betas``. Other keys (``prediction_type``, ``clip_sample``, ...)
    concern the sampler, not the schedule, and are ignored here.
    """
    timesteps = config.get("num_train_timesteps", 1000)
    trained = config.get("trained_betas")
    if trained is not None:
        return from_betas(list(trained))
    kind = config.get("beta_schedule", "linear")
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    if kind == "linear":
        return linear_schedule(timesteps, start, end)
    if kind == "scaled_linear":
        return scaled_linear_schedule(timesteps, start, end)
    if kind == "squaredcos_cap_v2":
        return cosine_schedule(timesteps)
    raise ValueError(f"unsupported beta_schedule {kind!r}; sr-desk reads linear, scaled_linear and squaredcos_cap_v2")


def _check_timesteps(timesteps: int) -> None:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive int, got {timesteps!r}")


def _build(betas: torch.Tensor, config: dict[str, Any] | None) -> NoiseSchedule:
    """Derive every tensor from ``betas``; ``config`` None means "describe it by its betas"."""
    if betas.ndim != 1 or betas.numel() < 1:
        raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
    if not bool(((betas > 0) & (betas < 1)).all()):
        # beta = 0 makes 1 - abar_1 = 0 (posterior coefficients divide by it); beta = 1 makes abar 0.
        raise ValueError("every beta must lie in (0, 1)")
    betas = betas.detach().to(device="cpu", dtype=torch.float64).clone()
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    variance = betas * (1 - abar_prev) / (1 - abar)
    if config is None:
        config = {"kind": "betas", "betas": betas.tolist()}
    return NoiseSchedule(
        betas=betas,
        alphas=alphas,
        alphas_cumprod=abar,
        alphas_cumprod_prev=abar_prev,
        posterior_variance=variance,
        posterior_log_variance_clipped=variance.clamp(min=LOG_VARIANCE_FLOOR).log(),
        posterior_mean_coef1=betas * abar_prev.sqrt() / (1 - abar),
        posterior_mean_coef2=(1 - abar_prev) * alphas.sqrt() / (1 - abar),
        config_json=json.dumps(config, sort_keys=True),
    )
