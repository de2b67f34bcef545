"""Diff-SR's own prior (spec 9): an unconditional epsilon-prediction U-Net, fully convolutional.

The paper's prior is a 35.7 M-parameter 256 px whole-image DDPM (spec 3);
sr-desk's is the shared compact U-Net trained on patches of its photos, run
on the whole canvas at any size. It sees no LR image: the layout comes from
the noised input, the prior only restores what the noise hid.
"""

from __future__ import annotations

import torch

from sr_desk.diffusion.compact_unet import CompactUNet, pad_to_multiple
from sr_desk_plugins.diffsr.config import DiffSRConfig

__all__ = ["DiffSRUNet", "pad_to_multiple"]


class DiffSRUNet(CompactUNet):
    """``forward(x_t, t)``: the noise in ``x_t`` (0-based step index ``t``), same shape as ``x_t``."""

    def __init__(self, config: DiffSRConfig):
        super().__init__(3, 3, width=config.width, mults=config.mults, blocks=config.blocks,
                         attention=config.attention, unshuffle=config.unshuffle)
        self.config = config

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t)
