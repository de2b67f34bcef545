"""The interface every sampler implements, the helpers they share, and the registry by name.

A sampler turns x at noise level ``start`` into a clean sample by calling an
eps-predicting network. It knows nothing about images, conditions or
residuals: the caller wraps its network in a :data:`NoisePredictor` closure.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import torch

from sr_desk.diffusion.schedule import NoiseSchedule

__all__ = [
    "Evaluator",
    "NoiseFn",
    "NoisePredictor",
    "Sampler",
    "StepCallback",
    "X0Correction",
    "make_sampler",
    "sampler_class",
    "sampler_names",
    "standard_normal_like",
]

NoisePredictor = Callable[[torch.Tensor, int], torch.Tensor]
"""``(x_t, i) -> eps``: the network's noise prediction at 0-based step index ``i``."""

StepCallback = Callable[[int, int, torch.Tensor], None]
"""``(step_number, total_steps, x0_hat)`` after each network call (1-based step); raising cancels the run."""

X0Correction = Callable[[torch.Tensor], torch.Tensor]
"""``x0_hat -> x0_hat'``: applied to every (clamped) x0 prediction, e.g. back-projection onto a known LR image."""


class NoiseFn(Protocol):
    """A standard-normal stream (e.g. :class:`sr_desk.diffusion.noise.SeededNoise`) usable instead of a generator."""

    def __call__(self, shape: Sequence[int], *, device: torch.device, dtype: torch.dtype) -> torch.Tensor: ...


Randomness = torch.Generator | NoiseFn | None

_REGISTRY: dict[str, type[Sampler]] = {}


class Sampler(ABC):
    """Reverse-process sampler over a :class:`NoiseSchedule`.

    ``steps`` is how many step indices a run from ``start`` visits (None: all of them);
    ``clip_x0`` clamps every x0 prediction to [-1, 1], as SRDiff's code does, which
    keeps early, very noisy predictions from throwing the trajectory out of range.
    Subclasses set ``name`` (registering themselves) and implement :meth:`_run`.
    """

    name: ClassVar[str]

    def __init__(
        self, schedule: NoiseSchedule, steps: int | None = None, *, clip_x0: bool = True, **options: Any
    ) -> None:
        if options:
            raise TypeError(f"the {self.name} sampler has no option(s) {sorted(options)}")
        valid_count = isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= schedule.T
        if steps is not None and not valid_count:
            raise ValueError(f"steps must be None or an int in [1, {schedule.T}], got {steps!r}")
        self.schedule = schedule
        self.steps = steps
        self.clip_x0 = bool(clip_x0)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise ValueError(f"two samplers are named {name!r}")
            _REGISTRY[name] = cls

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "name")
        return f"{type(self).__name__}({options})"

    # -- which steps -----------------------------------------------------------------------------

    def timesteps(self, start: int | None = None) -> list[int]:
        """The descending 0-based step indices a run from ``start`` (default T - 1) visits.

        ``steps`` of them (at most ``start + 1``), evenly spread over [0, start] by
        rounding a linspace, so both ``start`` and 0 are always included. Rounding is
        half-up: banker's rounding could map two neighbours to one index.
        """
        start = self._check_start(start)
        count = start + 1 if self.steps is None else min(self.steps, start + 1)
        if count == 1:
            return [start]
        stride = start / (count - 1)
        return [math.floor(start - k * stride + 0.5) for k in range(count)]

    def _check_start(self, start: int | None) -> int:
        if start is None:
            return self.schedule.T - 1
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < self.schedule.T:
            raise ValueError(f"start must be an int in [0, {self.schedule.T - 1}], got {start!r}")
        return start

    # -- running -----------------------------------------------------------------------------------

    def sample(
        self,
        predict_noise: NoisePredictor,
        x: torch.Tensor,
        *,
        start: int | None = None,
        generator: Randomness = None,
        callback: StepCallback | None = None,
        correct_x0: X0Correction | None = None,
        last_noise_gain: float = 1.0,
    ) -> torch.Tensor:
        """The clean sample reached from ``x``, which must be at noise level ``start`` (default T - 1).

        For a full run ``x`` is pure noise; for content fusion or interpolation it is a
        noised residual at ``start = t_bar - 1``. All randomness comes from ``generator``
        in a fixed order (one draw of x's shape per stochastic step), so one seed gives
        the same per-step noise whatever ``x`` is. ``correct_x0`` edits every x0
        prediction before the step uses it (every sampler here steps through x0, so
        the correction steers all of them alike).

        ``last_noise_gain`` scales the run's last fresh draw (the noise added
        before the final network call), leaving the others as they are. Above 1
        the final call meets more noise than its step was trained for and
        leaves part of it as fine grain, without the blotches that scaling the
        early draws brings (the coarse structure is settled by then). A sampler
        without fresh noise (:meth:`fresh_draws` 0) ignores it.
        """
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
        if not last_noise_gain >= 0:
            raise ValueError(f"last_noise_gain must be 0 or more, got {last_noise_gain!r}")
        indices = self.timesteps(start)
        model = Evaluator(predict_noise, self, len(indices), callback, correct_x0)
        draws = self.fresh_draws(indices)
        if last_noise_gain != 1.0 and draws > 0:
            generator = _ScaledDraw(generator, draws, last_noise_gain)
        return self._run(model, x, indices, generator)

    def fresh_draws(self, indices: list[int]) -> int:
        """How many draws of fresh noise a run over ``indices`` makes (none for a deterministic sampler)."""
        return 0

    @abstractmethod
    def _run(self, model: Evaluator, x: torch.Tensor, indices: list[int], generator: Randomness) -> torch.Tensor:
        """Walk ``indices`` (descending, starting at x's level) and return the clean sample."""

    # -- config --------------------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The subclass's own settings (JSON-able), beyond ``steps`` and ``clip_x0``."""
        return {}

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict (without the schedule, which belongs to the model) for :meth:`from_config`."""
        return {"name": self.name, "steps": self.steps, "clip_x0": self.clip_x0, **self.options()}

    @classmethod
    def from_config(cls, config: dict[str, Any], schedule: NoiseSchedule) -> Sampler:
        """The sampler ``config`` describes; on :class:`Sampler` itself the class is picked by name."""
        params = dict(config)
        name = params.pop("name", None)
        target = sampler_class(name) if cls is Sampler else cls
        if name != target.name:
            raise ValueError(f"config is for the {name!r} sampler, not {target.name!r}")
        return target(schedule, **params)


class Evaluator:
    """What every sampler does at a step: ask the network, clamp x0, correct it if asked, report progress."""

    def __init__(
        self,
        predict_noise: NoisePredictor,
        sampler: Sampler,
        total: int,
        callback: StepCallback | None,
        correct_x0: X0Correction | None = None,
    ) -> None:
        self._predict_noise = predict_noise
        self._correct = correct_x0
        self._schedule = sampler.schedule
        self._clip = sampler.clip_x0
        self._total = total
        self._callback = callback
        self._done = 0

    def x0(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The (clamped) x0 prediction at step ``i``; calls the callback, which may raise to cancel."""
        eps = self._predict_noise(x, i)
        if eps.shape != x.shape:
            raise ValueError(f"the noise predictor returned shape {tuple(eps.shape)} for x of shape {tuple(x.shape)}")
        x0_hat = self._schedule.predict_x0(x, i, eps.to(x.dtype))
        if self._clip:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        if self._correct is not None:
            x0_hat = self._correct(x0_hat)
        self._done += 1
        if self._callback is not None:
            self._callback(self._done, self._total, x0_hat)
        return x0_hat


def standard_normal_like(x: torch.Tensor, generator: Randomness) -> torch.Tensor:
    """A standard-normal tensor of x's shape, dtype and device, drawn from ``generator``.

    A generator on another device than x (a CPU generator for a GPU run) draws on
    its own device and the result is moved, so a seed gives the same noise on any
    device; a :class:`NoiseFn` is simply called.
    """
    if generator is None or isinstance(generator, torch.Generator):
        device = x.device if generator is None else generator.device
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
        return noise.to(x.device)
    return generator(x.shape, device=x.device, dtype=x.dtype)


class _ScaledDraw:
    """``generator``'s stream with its draw number ``which`` (1-based) scaled by ``gain``."""

    def __init__(self, generator: Randomness, which: int, gain: float) -> None:
        self._generator, self._which, self._gain, self._drawn = generator, which, float(gain), 0

    def __call__(self, shape: Sequence[int], *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        self._drawn += 1
        noise = standard_normal_like(torch.empty(tuple(shape), device=device, dtype=dtype), self._generator)
        return noise * self._gain if self._drawn == self._which else noise


def sampler_names() -> tuple[str, ...]:
    """The names of every registered sampler (built-ins and any registered since)."""
    return tuple(_REGISTRY)


def sampler_class(name: str) -> type[Sampler]:
    """The sampler class registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; expected one of {list(_REGISTRY)}") from None


def make_sampler(name: str, schedule: NoiseSchedule, steps: int | None = None, **options: Any) -> Sampler:
    """A sampler by name (``"ancestral"``, ``"ddim"``, ``"dpm++2m"``, ...), e.g. from a settings value."""
    return sampler_class(name)(schedule, steps, **options)
