"""The compact pixel-space DoSSR network (spec 9): a time-conditioned U-Net on ``[x_t, x_hat]``.

It stands in for Stable Diffusion 2.1 with its ControlNet, which fit neither
a desktop CPU nor the project's machines. What is kept is the interface the
sampler needs: ``(x_t, x_hat, t) -> x0_hat`` in ``[-1, 1]``. The output is a
residual on ``x_hat`` (the last convolution starts at zero, so an untrained
network returns the pre-restored input), trained with the official L1 on x0.
Any other module with that call signature can replace it.
"""

from __future__ import annotations

import torch

from sr_desk.diffusion.compact_unet import CompactUNet, pad_to_multiple
from sr_desk_plugins.dossr.config import DoSSRConfig

__all__ = ["DoSSRUNet", "pad_to_multiple"]


class DoSSRUNet(CompactUNet):
    """``forward(x_t, x_hat, t)``: the clean image's prediction, same shape as ``x_t`` (sides: ``size_multiple``)."""

    def __init__(self, config: DoSSRConfig):
        super().__init__(6, 3, width=config.width, mults=config.mults, blocks=config.blocks,
                         attention=config.attention, unshuffle=config.unshuffle)
        self.config = config

    def forward(self, x_t: torch.Tensor, x_hat: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        return x_hat + self.unet(torch.cat([x_t, x_hat], dim=1), t)
