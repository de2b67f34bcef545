"""Diff-SR's sampler glue (spec 5, Algorithm R): resample, inject noise to the scale's level, reverse from there.

Shared by the editor's method, the calibration and the trainer's
validation, so that every number logged is that of the image a user gets.
The prior is any ``predict_noise(x_t, i) -> eps`` over a
:class:`~sr_desk.diffusion.schedule.NoiseSchedule` (sr-desk's own prior or a
diffusers ``UNet2DModel``); images are ``N x 3 x H x W`` in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sr_desk.diffusion.compact_unet import pad_to_multiple
from sr_desk.diffusion.consistency import back_project_to
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.samplers import make_sampler
from sr_desk.diffusion.samplers.base import NoisePredictor, Randomness, standard_normal_like
from sr_desk.diffusion.schedule import NoiseSchedule
from sr_desk_plugins.diffsr.injection import injection_step

#: Where the result is pulled back onto the input (iterative back-projection, spec 8 "LR-consistency step"):
#: ``every-step`` corrects each x0 prediction (the DDNM-style data consistency), ``end`` only the result.
CONSISTENCY_MODES = ("every-step", "end", "off")
DEFAULT_CONSISTENCY = "every-step"
SAMPLERS = ("ddim", "ddpm")
DEFAULT_STEPS = 10
#: Back-projection passes of the final consistency step (the no-model reference's count).
FINAL_PASSES = 3


def resample(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """x_hat_0 = U(y) (spec 2.2): MATLAB bicubic to ``size`` (the paper names no operator; spec 8.1)."""
    return imresize(lr, size=size)


def scale_of(lr: torch.Tensor, size: tuple[int, int]) -> float:
    """The scale the injection level is looked up for: the larger of the two side ratios (spec 5 step 1)."""
    return max(size[0] / lr.shape[-2], size[1] / lr.shape[-1])


@torch.no_grad()
def restore(
    predict_noise: NoisePredictor,
    lr: torch.Tensor,
    size: tuple[int, int],
    schedule: NoiseSchedule,
    *,
    level: float,
    steps: int = DEFAULT_STEPS,
    sampler: str = "ddim",
    generator: Randomness = None,
    consistency: str = DEFAULT_CONSISTENCY,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    multiple: int = 1,
    last_noise_gain: float = 1.0,
) -> torch.Tensor:
    """The SR image of ``lr`` at ``size`` in ``[0, 1]`` (unclamped), from noise level ``level`` = t/T.

    ``level`` 0 returns the resampled input (then the final consistency, if
    asked). ``sampler`` ``ddim`` is deterministic after the injected noise
    (eta 0, the library default the paper used); ``ddpm`` adds fresh noise at
    every step (eta 1). ``callback(call, total, x0)`` gets each x0 prediction
    in ``[0, 1]``, cropped to ``size``. Sides are padded to ``multiple``.
    ``last_noise_gain`` scales ``ddpm``'s last fresh draw (:meth:`Sampler.sample`).
    """
    if consistency not in CONSISTENCY_MODES:
        raise ValueError(f"unknown consistency {consistency!r}; choose one of {', '.join(CONSISTENCY_MODES)}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    x0 = resample(lr, size) * 2 - 1
    start = injection_step(level, schedule.T)
    image = x0 / 2 + 0.5
    if start >= 0:
        padded, _ = pad_to_multiple(x0, multiple)
        noise = standard_normal_like(padded, generator)
        x_t = schedule.q_sample(padded, start, noise)
        correct = _in_loop_consistency(lr, size) if consistency == "every-step" else None

        def on_call(call: int, total: int, x0_hat: torch.Tensor) -> None:
            if callback is not None:
                callback(call, total, x0_hat[..., : size[0], : size[1]] / 2 + 0.5)

        walker = make_sampler("ddim", schedule, min(steps, start + 1), eta=1.0 if sampler == "ddpm" else 0.0)
        out = walker.sample(predict_noise, x_t, start=start, generator=generator, callback=on_call,
                            correct_x0=correct, last_noise_gain=last_noise_gain)
        image = out[..., : size[0], : size[1]] / 2 + 0.5
    if consistency != "off":
        image = back_project_to(image, lr, FINAL_PASSES)
    return image


def _in_loop_consistency(lr: torch.Tensor, size: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Back-project every x0 prediction (in ``[-1, 1]``, padded) onto ``lr``; the padding is left as it was."""
    target = lr * 2 - 1

    def correct(x0_hat: torch.Tensor) -> torch.Tensor:
        inside = x0_hat[..., : size[0], : size[1]]
        fixed = back_project_to(inside, target, 1)
        out = x0_hat.clone()
        out[..., : size[0], : size[1]] = fixed
        return out

    return correct

