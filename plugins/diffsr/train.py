"""Training Diff-SR's prior on the shared trainer: an unconditional DDPM on patches of the photos.

    sr-desk train diffsr --data ../shared/data/train --out runs/diffsr --steps 20000 --batch 16 --patch 96
    sr-desk train diffsr --out runs/diffsr --export resources/weights/diffsr-prior.safetensors --fp16

From a plain checkout: ``python -m sr_desk.training diffsr ...``. The
paper's recipe (spec 4): epsilon prediction with MSE, T = 1000, linear betas
1e-4 to 0.02; no LR image is ever seen. One deliberate change (spec 9, in
the model card): steps are drawn with most of their weight where Diff-SR
injects (NL at most 0.6, and most at small levels, :data:`STEP_MIX`), since
the reverse chain never starts above it.
The export is calibrated afterwards with ``python -m sr_desk_plugins.diffsr.calibrate``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
from torch import nn

from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.schedule import NoiseSchedule, from_scheduler_config
from sr_desk.training.cli import add_export_arguments, add_training_arguments, run_trainer, starting_network
from sr_desk.training.export import export_ema
from sr_desk.training.metrics import forward_flops
from sr_desk_plugins.diffsr.checkpoints import load_model, save_safetensors
from sr_desk_plugins.diffsr.config import DiffSRConfig
from sr_desk_plugins.diffsr.injection import fallback_level
from sr_desk_plugins.diffsr.network import DiffSRUNet
from sr_desk_plugins.diffsr.process import DEFAULT_STEPS, restore

PRESETS = {
    "compact": DiffSRConfig(width=32, mults=(1, 2, 4), blocks=1, attention=True, unshuffle=2),
    "tiny": DiffSRConfig(width=8, mults=(1, 2), blocks=1, attention=False, unshuffle=2),
}

#: How the steps of a batch are drawn: (share, highest level); each share uniform below its level.
#: Diff-SR injects at most 0.6 T (spec 2.6), and a prior this small is only ever useful at low levels
#: (the calibration finds them), so the denoiser's weakest region, small t, gets most of the batch.
STEP_MIX = ((0.4, 0.1), (0.4, 0.6), (0.2, 1.0))


class DiffSRPriorTask:
    """One stage: ``x_t`` from the DDPM marginal of an HR patch, the noise predicted with MSE (spec 4)."""

    stage = "diffsr"

    def __init__(self, config: DiffSRConfig, network: DiffSRUNet, scale: int = 4):
        self.config, self.module, self.scale = config, network, scale
        self.schedule: NoiseSchedule = from_scheduler_config(config.scheduler_config())

    def config_json(self) -> str:
        return self.config.to_json()

    def sample_steps(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Step indices drawn by :data:`STEP_MIX`, reproducibly from ``generator``."""
        device = generator.device
        shares = torch.tensor([share for share, _ in STEP_MIX], device=device)
        highest = torch.tensor([max(1, round(level * self.schedule.T)) for _, level in STEP_MIX], device=device)
        which = torch.multinomial(shares, batch, replacement=True, generator=generator)
        uniform = torch.rand(batch, generator=generator, device=device)
        return (uniform * highest[which]).long().clamp(max=self.schedule.T - 1)

    def loss(self, module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x0 = hr * 2 - 1
        steps = self.sample_steps(hr.shape[0], generator)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        x_t = self.schedule.q_sample(x0, steps, noise)
        prediction = module(x_t.contiguous(memory_format=torch.channels_last), steps)
        return (prediction.float() - noise).pow(2).mean()

    @torch.no_grad()
    def predict(self, module: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """Algorithm R at the paper's level for this scale (seed 0), with the default steps and consistency."""
        size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        out = restore(lambda x, i: module(x, i).float(), lr, size, self.schedule, level=fallback_level(self.scale),
                      steps=DEFAULT_STEPS, generator=SeededNoise(0), multiple=self.config.size_multiple)
        return out.clamp(0, 1)

    def flops_per_sample(self, patch: int) -> float | None:
        x = torch.zeros(1, 3, patch, patch)
        return forward_flops(lambda: self.module(x, 1))


def build_task(args: argparse.Namespace) -> DiffSRPriorTask:
    network, config = starting_network(args, load=load_model, presets=PRESETS, fresh=DiffSRUNet,
                                       patch_multiple=lambda c: c.size_multiple)
    return DiffSRPriorTask(config, network, args.scale)


def export(args: argparse.Namespace) -> int:
    return export_ema(args, stage=DiffSRPriorTask.stage, config_from_json=DiffSRConfig.from_json,
                      save=save_safetensors, trained_by="sr-desk train diffsr", degradation="HR patches only",
                      then="; calibrate it with python -m sr_desk_plugins.diffsr.calibrate")



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sr-desk train diffsr", description=__doc__.split("\n\n")[0])
    add_training_arguments(p)
    p.add_argument("--preset", choices=sorted(PRESETS), default="compact")
    p.add_argument("--scale", type=int, default=4, help="scale of the validation crops (the prior sees no LR)")
    # No --convert: Diff-SR released no weights (a diffusers UNet2DModel folder runs as it is, --weights FOLDER).
    add_export_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_trainer(build_parser().parse_args(argv), build_task=build_task, export=export)


if __name__ == "__main__":
    sys.exit(main())
