"""Training DoSSR's compact network on the shared trainer: L1 on x0 over the domain-shift process.

    sr-desk train dossr --data ../shared/data/train --out runs/dossr --steps 8000 --batch 16 --patch 96
    sr-desk train dossr --out runs/dossr --export resources/weights/dossr-x4.safetensors --fp16

From a plain checkout: ``python -m sr_desk.training dossr ...``. The official
objective (spec 4): ``x_t`` drawn from the domain-shift marginal between the
HR patch ``x0`` and the pre-restored LR ``x_hat``, and the L1 distance between
the network's x0 and ``x0``. Two changes, both in the model card: ``t`` is
drawn only below ``t1`` (the sampler never calls the network above it; the
official code spends half its steps there), half of the batch on the five
steps the default sampler calls; and the LR images mix x2, x3 and x4, so that
one model serves any scale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
from torch import nn

from sr_desk.training.cli import add_export_arguments, add_training_arguments, run_trainer, starting_network
from sr_desk.training.data import ScaleMix
from sr_desk.training.export import export_ema
from sr_desk.training.metrics import forward_flops
from sr_desk.training.texture import texture_loss
from sr_desk_plugins.dossr.checkpoints import load_model, save_safetensors
from sr_desk_plugins.dossr.config import DoSSRConfig
from sr_desk_plugins.dossr.network import DoSSRUNet
from sr_desk_plugins.dossr.process import DEFAULT_STEPS, pre_restore, process_for, restore

PRESETS = {
    # 6.0 M parameters: about 49 training patches of 96 px a second on a 2-core CPU, 52 ms a call at 256 px.
    "compact": DoSSRConfig(width=48, mults=(1, 2, 4), blocks=1, attention=True, unshuffle=4),
    "tiny": DoSSRConfig(width=8, mults=(1, 2), blocks=1, attention=False, unshuffle=2),
}

#: Share of each batch on the steps the default 5-step sampler calls; the rest is uniform below t1.
GRID_SHARE = 0.5
#: LR scales mixed in training, and how often each is drawn (x4 is what the bench and the app default use).
TRAIN_SCALES = {2: 0.2, 3: 0.2, 4: 0.6}


class DoSSRTask:
    """One stage: ``x_t`` from the domain-shift marginal, the network's x0 against ``x0`` in L1 (spec 4)."""

    stage = "dossr"

    def __init__(self, config: DoSSRConfig, network: DoSSRUNet, scale: int = 4, texture: float = 0.0):
        self.config, self.module, self.scale = config, network, scale
        self.texture = texture  # weight of the texture loss beside L1 (sr_desk/training/texture.py)
        self.process = process_for(config.timesteps, config.t1)
        self.grid = torch.tensor(self.process.grid(DEFAULT_STEPS)[1:])
        self.scale_mix = ScaleMix(TRAIN_SCALES)

    def config_json(self) -> str:
        return self.config.to_json()

    def sample_steps(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        device = generator.device
        uniform = torch.randint(0, self.config.t1, (batch,), generator=generator, device=device)
        on_grid = self.grid.to(device)[torch.randint(0, len(self.grid), (batch,), generator=generator, device=device)]
        pick = torch.rand(batch, generator=generator, device=device) < GRID_SHARE
        return torch.where(pick, on_grid, uniform)

    @torch.compiler.disable
    def condition(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x_hat`` in ``[-1, 1]`` from an LR of a drawn scale; eager, as data synthesis is not for a graph
        (a host-side scale draw, resampling matrices built in numpy for each size)."""
        lr = self.scale_mix.lr_for(lr, hr, self.scale, generator)
        return pre_restore(lr, tuple(hr.shape[-2:])) * 2 - 1

    def loss(self, module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x_hat = self.condition(lr, hr, generator)
        x0 = hr * 2 - 1
        steps = self.sample_steps(hr.shape[0], generator)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        x_t = self.process.q_sample(x0, x_hat, steps, noise)
        channels_last = torch.channels_last
        prediction = module(x_t.contiguous(memory_format=channels_last),
                            x_hat.contiguous(memory_format=channels_last), steps)
        loss = (prediction.float() - x0).abs().mean()
        return loss + self.texture * texture_loss(prediction, x0) if self.texture else loss

    @torch.no_grad()
    def predict(self, module: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """The app's default: 5 steps of the order-3 solver, colour fix, LR consistency (seed 0)."""
        size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        generator = torch.Generator(device=lr.device).manual_seed(0)
        out = restore(module, lr, size, self.process, generator=generator, multiple=self.config.size_multiple)
        return out.clamp(0, 1)

    def flops_per_sample(self, patch: int) -> float | None:
        x = torch.zeros(1, 3, patch, patch)
        return forward_flops(lambda: self.module(x, x, 1))


def build_task(args: argparse.Namespace) -> DoSSRTask:
    # A fresh network's head starts at zero: an untrained network returns x_hat.
    network, config = starting_network(args, load=load_model, presets=PRESETS, fresh=DoSSRUNet,
                                       patch_multiple=lambda c: c.size_multiple)
    return DoSSRTask(config, network, args.scale, args.texture)


def export(args: argparse.Namespace) -> int:
    return export_ema(args, stage=DoSSRTask.stage, config_from_json=DoSSRConfig.from_json, save=save_safetensors,
                      trained_by="sr-desk train dossr", degradation="bicubic x2/x3/x4 LR")



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sr-desk train dossr", description=__doc__.split("\n\n")[0])
    add_training_arguments(p)
    p.add_argument("--preset", choices=sorted(PRESETS), default="compact")
    p.add_argument("--scale", type=int, default=4, help="scale of the validation crops (training mixes x2-x4)")
    p.add_argument("--texture", type=float, default=0.0,
                   help="weight of the texture loss (local amount of fine structure, phase-free) beside L1 on x0; "
                   "0: the paper's L1 alone")
    # No --convert: DoSSR's official release is a Stable Diffusion ControlNet, nothing this network can take.
    add_export_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_trainer(build_parser().parse_args(argv), build_task=build_task, export=export)


if __name__ == "__main__":
    sys.exit(main())
