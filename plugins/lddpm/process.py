"""LDDPM's sampling (spec 5, Algorithm L): four coarse steps from pure noise, three seeded noise sources.

Shared by the editor's method and the trainer's validation. At every step
the network gets a fresh CVAE latent and a fresh GAN latent, all drawn,
with the start noise and the posterior noise, from one seeded stream, so a
seed reproduces the image. Images are ``N x 3 x H x W`` in ``[0, 1]``.

``residual_gain`` is Detail's means past the trained sampler: the network
predicts the image as a residual on the enlarged input, and a gain g > 1
extrapolates every prediction away from that input, ``up + g (x0 - up)``,
as guidance extrapolates away from a weaker prediction. Its latents do not
move its texture (MODEL_CARD.md), so this is the one path to more detail the
weights offer: it strengthens what the network draws, and draws nothing new.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from sr_desk.diffusion.compact_unet import pad_to_multiple
from sr_desk.diffusion.consistency import back_project_to
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.noise import NoiseSource
from sr_desk.diffusion.schedule import NoiseSchedule, vp_coarse_schedule
from sr_desk_plugins.lddpm.adversarial import fake_pair
from sr_desk_plugins.lddpm.network import LDDPMNet

__all__ = ["COARSE_STEPS", "coarse_schedule", "restore"]

#: Reverse steps on the coarse schedule (DDGAN's 4; the paper never says, spec 8.1).
COARSE_STEPS = 4
#: Back-projection passes of the optional LR consistency (the no-model reference's count).
CONSISTENCY_PASSES = 3


def coarse_schedule(steps: int = COARSE_STEPS) -> NoiseSchedule:
    return vp_coarse_schedule(steps)


@torch.no_grad()
def restore(
    network: LDDPMNet,
    lr: torch.Tensor,
    size: tuple[int, int],
    schedule: NoiseSchedule,
    noise: NoiseSource,
    *,
    lr_consistency: bool = True,
    residual_gain: float = 1.0,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    precision: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> torch.Tensor:
    """The SR image of ``lr`` at ``size`` in ``[0, 1]`` (unclamped); ``callback(step, total, x0)`` after each call."""
    if not residual_gain >= 1.0:
        raise ValueError(f"residual_gain must be 1 or more, got {residual_gain!r}")
    device = lr.device
    lr_up, _ = pad_to_multiple(imresize(lr, size=size) * 2 - 1, network.config.size_multiple)

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        return noise(shape, device=device, dtype=torch.float32)

    x = draw(tuple(lr_up.shape))
    total = schedule.T
    image = x[..., : size[0], : size[1]] / 2 + 0.5
    for done, k in enumerate(reversed(range(total)), start=1):
        z_gan = draw((x.shape[0], network.config.gan_latent))
        z_latent = draw(network.latent_shape(x))
        with precision():
            x0, _ = network(x, lr_up, k, z_gan, z_latent=z_latent)
        x0 = x0.float().clamp(-1, 1)
        steps = torch.full((x.shape[0],), k, device=device)
        x = fake_pair(schedule, x0, x, steps, noise)
        image = _extrapolated(x0, lr_up, residual_gain)[..., : size[0], : size[1]] / 2 + 0.5
        if callback is not None:
            callback(done, total, image)
    return back_project_to(image, lr, CONSISTENCY_PASSES) if lr_consistency else image


def _extrapolated(x0: torch.Tensor, lr_up: torch.Tensor, gain: float) -> torch.Tensor:
    """``lr_up + gain (x0 - lr_up)``: the network's residual on its input, scaled (``x0`` itself at gain 1)."""
    return x0 if gain == 1.0 else torch.lerp(lr_up, x0, gain)
