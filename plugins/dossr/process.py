"""DoSSR's sampler glue: the pre-restored input ``x_hat``, and one call from LR image to SR image.

Shared by the editor's method and the trainer's validation, so that the
numbers the trainer logs are those of the image a user gets.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sr_desk.diffusion.consistency import back_project
from sr_desk.diffusion.domain_shift import DomainShiftProcess, ddim_sample, dos_sde_sample, wavelet_color_fix
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.samplers.base import Randomness
from sr_desk_plugins.dossr.network import pad_to_multiple

#: Back-projection passes of the pre-restoration and of the optional LR consistency (the no-model reference's).
CONSISTENCY_PASSES = 3
SOLVERS = ("dos-sde-3", "dos-sde-2", "dos-sde-1", "ddim")
DEFAULT_SOLVER = "dos-sde-3"
DEFAULT_STEPS = 5


def integer_scale(lr: torch.Tensor, size: tuple[int, int]) -> int | None:
    """The integer factor from ``lr`` to ``size``, or None when the sides are not one exact multiple."""
    h, w = lr.shape[-2:]
    if size[0] % h or size[1] % w or size[0] // h != size[1] // w:
        return None
    return size[0] // h


def pre_restore(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x_hat`` in ``[0, 1]``: MATLAB-bicubic to ``size``, back-projected onto ``lr`` at integer scales.

    The pixel-space stand-in for the official RealESRNet pre-restoration
    (spec 9): it is exactly the no-model reference, so the network only has
    to learn what that reference lacks.
    """
    x_hat = imresize(lr, size=size)
    scale = integer_scale(lr, size)
    if scale is not None and scale > 1:
        x_hat = back_project(x_hat, lr, scale, CONSISTENCY_PASSES)
    return x_hat


def process_for(timesteps: int, t1: int) -> DomainShiftProcess:
    return DomainShiftProcess.paper(timesteps, t1)


@torch.no_grad()
def restore(
    network: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    lr: torch.Tensor,
    size: tuple[int, int],
    process: DomainShiftProcess,
    *,
    solver: str = DEFAULT_SOLVER,
    steps: int = DEFAULT_STEPS,
    generator: Randomness = None,
    color_fix: bool = True,
    lr_consistency: bool = True,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    multiple: int = 1,
) -> torch.Tensor:
    """The SR image in ``[0, 1]`` (unclamped) of ``lr`` at ``size``; ``network(x_t, x_hat, t)`` works in ``[-1, 1]``.

    ``callback(call, total, x0)`` gets each x0 prediction in ``[0, 1]``,
    cropped to ``size``. Sides are padded to ``multiple`` for the network.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown DoSSR solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    base, _ = pad_to_multiple(pre_restore(lr, size) * 2 - 1, multiple)

    def predict(x: torch.Tensor, t: int) -> torch.Tensor:
        return network(x, base, t).float()

    def on_call(call: int, total: int, x0: torch.Tensor) -> None:
        if callback is not None:
            callback(call, total, x0[..., : size[0], : size[1]] / 2 + 0.5)

    if solver == "ddim":
        out = ddim_sample(predict, base, process, steps, eta=0.0, generator=generator, callback=on_call)
    else:
        order = int(solver[-1])
        out = dos_sde_sample(predict, base, process, steps, order, generator, callback=on_call)
    if color_fix:
        out = wavelet_color_fix(out, base)  # against the padded x_hat: the edges see the same padding
    image = out[..., : size[0], : size[1]] / 2 + 0.5
    scale = integer_scale(lr, size)
    if lr_consistency and scale is not None and scale > 1:
        image = back_project(image, lr, scale, CONSISTENCY_PASSES)
    return image
