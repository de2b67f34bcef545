"""Training DTLS on the shared trainer: the U-Net predicts the HR image from any level of degradation.

    sr-desk train dtls --data ../shared/data/train --out runs/dtls --steps 4000 --batch 16 --patch 96
    sr-desk train dtls --out runs/dtls --export resources/weights/dtls-x4.safetensors --fp16
    sr-desk train dtls --convert SR_16_128_s4.pt --export dtls-16-128.safetensors

From a plain checkout: ``python -m sr_desk.training dtls ...``. The paper's
objective (spec 4): ``t`` drawn over the levels, ``x_t = D(x0, t)``, the L1
distance between ``U(x_t, t)`` and ``x0``, AdamW. sr-desk draws ``t`` with more
weight where its sampler calls the network (the x4 start level and level 1:
spec 5.2 shows the released sampler reaches the output through those two
calls only), and at the x4 start level it feeds the enlarged MATLAB-bicubic
LR image itself, the input real photos give.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
from torch import nn

from sr_desk.diffusion.consistency import back_project
from sr_desk.diffusion.resolution import Degradation, start_level, two_call_sample
from sr_desk.training.cli import add_export_arguments, add_training_arguments, run_trainer, starting_network
from sr_desk.training.export import export_ema
from sr_desk.training.metrics import forward_flops
from sr_desk_plugins.dtls.checkpoints import convert_official, load_model, save_safetensors
from sr_desk_plugins.dtls.config import DTLSConfig
from sr_desk_plugins.dtls.network import DTLSUNet

PRESETS = {
    # 3.6 M parameters: about 12 training patches of 96 px a second on a 2-core CPU (float32; 15 in bf16),
    # where the official 16 -> 128 U-Net (56.6 M) manages about one.
    "compact": DTLSConfig(dim=16, dim_mults=(1, 2, 4, 8), attn_heads=2, attn_dim_head=16, residual=True,
                          downscale="bicubic-aa"),
    "official-16-128": DTLSConfig(dim=64, dim_mults=(1, 2, 4, 8), max_level=28),
    "tiny": DTLSConfig(dim=8, dim_mults=(1, 2), attn_heads=1, attn_dim_head=8, residual=True, downscale="bicubic-aa"),
}

#: Share of each batch at the x4 start level and at level 1 (the rest is spread over all levels).
FOCUS_SHARE = 0.3
CONSISTENCY_PASSES = 3


class DTLSTask:
    """One stage: ``U(D(x0, t), t)`` against ``x0`` in L1, on ``[0, 1]`` images (spec 4)."""

    stage = "dtls"

    def __init__(self, config: DTLSConfig, unet: DTLSUNet, scale: int = 4):
        self.config, self.module, self.scale = config, unet, scale
        self.degrade = Degradation(config.levels, config.downscale)
        self.start = start_level(scale, config.levels)
        weights = torch.full((config.max_level + 1,), (1 - 2 * FOCUS_SHARE) / (config.max_level + 1))
        weights[self.start] += FOCUS_SHARE
        weights[1] += FOCUS_SHARE
        self.level_weights = weights

    def config_json(self) -> str:
        return self.config.to_json()

    def sample_levels(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        weights = self.level_weights.to(generator.device)
        return torch.multinomial(weights, batch, replacement=True, generator=generator)

    @torch.compiler.disable
    def inputs(self, lr: torch.Tensor, hr: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """``D(hr, t)`` per image, but the enlarged LR itself where ``t`` is the start level of the LR's scale.

        Eager: which images sit at which level is data, and a graph would be rebuilt for every mix."""
        x = self.degrade.batch(hr, levels)
        at_start = (levels == self.start).nonzero().flatten()
        if at_start.numel():
            x[at_start] = self.degrade.enlarge(lr[at_start], tuple(hr.shape[-2:]))
        return x

    def loss(self, module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        levels = self.sample_levels(hr.shape[0], generator)
        x = self.inputs(lr, hr, levels).contiguous(memory_format=torch.channels_last)
        return (module(x, levels).float() - hr).abs().mean()

    @torch.no_grad()
    def predict(self, module: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """The app's default: the two-call sampler from the enlarged LR, then back-projection onto it."""
        size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        start = self.degrade.enlarge(lr, size)
        out = two_call_sample(lambda x, t: module(x, t).float(), start, self.start, self.degrade)
        return back_project(out, lr, self.scale, CONSISTENCY_PASSES).clamp(0, 1)

    def flops_per_sample(self, patch: int) -> float | None:
        return forward_flops(lambda: self.module(torch.zeros(1, 3, patch, patch), 1))


def build_task(args: argparse.Namespace) -> DTLSTask:
    unet, config = starting_network(args, load=load_model, presets=PRESETS, fresh=_fresh_unet)
    return DTLSTask(config, unet, args.scale)


def _fresh_unet(config: DTLSConfig) -> DTLSUNet:
    unet = DTLSUNet(config)
    if config.residual:
        # Start as the identity: the first predictions are the enlarged input itself.
        nn.init.zeros_(unet.final_conv[1].weight)
        nn.init.zeros_(unet.final_conv[1].bias)
    return unet


def export(args: argparse.Namespace) -> int:
    return export_ema(args, stage=DTLSTask.stage, config_from_json=DTLSConfig.from_json, save=save_safetensors,
                      trained_by="sr-desk train dtls", degradation="bicubic x4 LR")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sr-desk train dtls", description=__doc__.split("\n\n")[0])
    add_training_arguments(p)
    p.add_argument("--preset", choices=sorted(PRESETS), default="compact")
    p.add_argument("--scale", type=int, default=4, help="scale of the LR images the start level is fed with")
    add_export_arguments(p, "DTLS ({step, model, ema})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_trainer(build_parser().parse_args(argv), build_task=build_task, export=export,
                       convert=lambda checkpoint, out: convert_official(checkpoint, out).to_json())


if __name__ == "__main__":
    sys.exit(main())
