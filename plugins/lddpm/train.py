"""Training LDDPM on the shared trainer, in the two stages spec 9 advises.

    sr-desk train lddpm --stage denoise --data ../shared/data/train --out runs/lddpm --steps 8000 --patch 96
    sr-desk train lddpm --stage adversarial --init runs/lddpm/denoise.safetensors --data ... --out runs/lddpm
    sr-desk train lddpm --out runs/lddpm --stage adversarial --export resources/weights/lddpm-x4.safetensors --fp16

Stage ``denoise``: the noise MSE of eq. 7 on the four coarse steps (the
network predicts x0, a residual on ``up(LR)``; the noise follows from it), the L1
between the predicted and the true HR image, the CVAE's KL term (weight
1e-3 at first, spec 9) and a style term; stage ``adversarial`` adds DDGAN's
non-saturating generator loss against a time-conditioned discriminator
trained with R1 (its weights and optimiser live in the task and travel in
the checkpoint). The paper's VGG19 content and style losses need weights
this project cannot download: the content term is the L1 alone, and the
style term matches the per-channel mean and standard deviation of a fixed
bank of derivative filters (luma, its x/y gradients and Laplacian, at two
scales) between the result and the photo. The model card says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.training.cli import add_export_arguments, add_training_arguments, run_trainer, starting_network
from sr_desk.training.data import ScaleMix
from sr_desk.training.diversity import mode_seeking_loss
from sr_desk.training.export import export_ema
from sr_desk.training.metrics import forward_flops, luma
from sr_desk_plugins.lddpm.adversarial import Discriminator, discriminator_loss, fake_pair, generator_loss, real_pair
from sr_desk_plugins.lddpm.checkpoints import load_model, save_safetensors
from sr_desk_plugins.lddpm.network import LDDPMConfig, LDDPMNet
from sr_desk_plugins.lddpm.process import coarse_schedule, restore

PRESETS = {
    # 3.8 M parameters; its [x_t, up(LR)] as 2x2 blocks: 2 GFLOP a 96 px forward instead of 8.
    "compact": LDDPMConfig(width=32, mults=(1, 2, 4), latent_channels=8, gan_latent=32, flow_steps=2, heads=4,
                           dropout=0.1, unshuffle=2),
    "tiny": LDDPMConfig(width=8, mults=(1, 2), latent_channels=2, gan_latent=4, flow_steps=1, heads=2, dropout=0.0),
}
STAGES = ("denoise", "adversarial")
#: Loss weights: eq. 18 sets all to 1; the KL starts small (spec 9) and the style term is our stand-in.
KL_WEIGHT, STYLE_WEIGHT, ADVERSARIAL_WEIGHT = 1e-3, 1.0, 0.05
#: LR scales mixed in training, and how often each is drawn.
TRAIN_SCALES = {2: 0.2, 3: 0.2, 4: 0.6}
#: DDGAN's discriminator settings (spec 2.5).
D_LR, D_BETAS, R1_GAMMA, R1_EVERY = 1e-4, (0.5, 0.9), 0.05, 15


def style_features(rgb: torch.Tensor) -> list[torch.Tensor]:
    """A fixed, weight-free feature bank: luma, its x/y derivatives and Laplacian, at full and half size."""
    kernels = torch.tensor([[[0, 0, 0], [0, 1, 0], [0, 0, 0]], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                            [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], [[0, 1, 0], [1, -4, 1], [0, 1, 0]]],
                           dtype=rgb.dtype, device=rgb.device)[:, None] / 4
    y = luma(rgb) / 255.0
    return [F.conv2d(level, kernels, padding=1) for level in (y, F.avg_pool2d(y, 2))]


def style_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared differences of per-channel spatial mean and std (the AdaIN statistics of spec 2.6)."""
    total = a.new_zeros(())
    for fa, fb in zip(style_features(a), style_features(b), strict=True):
        total = total + (fa.mean((2, 3)) - fb.mean((2, 3))).pow(2).mean() + (fa.std((2, 3)) - fb.std((2, 3))).pow(2).mean()
    return total


class LDDPMTask:
    """One stage of LDDPM's training on the coarse schedule (see the module docstring)."""

    def __init__(self, config: LDDPMConfig, network: LDDPMNet, stage: str, scale: int = 4, diversity: float = 0.0):
        self.config, self.module, self.stage, self.scale = config, network, stage, scale
        self.diversity = diversity  # weight of the mode-seeking term (sr_desk/training/diversity.py)
        self.schedule = coarse_schedule()
        self.scale_mix = ScaleMix(TRAIN_SCALES)
        self.discriminator: Discriminator | None = None
        self.d_optimizer: torch.optim.Optimizer | None = None
        self._d_steps = 0
        if stage == "adversarial":
            self.discriminator = Discriminator(width=32, levels=3)
            self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=D_LR, betas=D_BETAS)

    def config_json(self) -> str:
        return self.config.to_json()

    @torch.compiler.disable
    def condition(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The enlarged LR of a drawn scale in ``[-1, 1]``; eager, as data synthesis is not for a graph
        (a host-side scale draw, resampling matrices built in numpy for each size)."""
        lr = self.scale_mix.lr_for(lr, hr, self.scale, generator)
        return imresize(lr, size=tuple(hr.shape[-2:])) * 2 - 1

    def loss(self, module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        lr_up = self.condition(lr, hr, generator)
        device = hr.device
        x0 = hr * 2 - 1
        k = torch.randint(0, self.schedule.T, (hr.shape[0],), generator=generator, device=device)
        x_prev, x_t = real_pair(self.schedule, x0, k, generator)
        z_gan = torch.randn(hr.shape[0], self.config.gan_latent, generator=generator, device=device)
        delta = torch.randn(module.latent_shape(x0), generator=generator, device=device)
        eps_true = self.schedule.eps_from_x0(x_t, k, x0)
        x0_raw, kl = module(x_t.contiguous(memory_format=torch.channels_last), lr_up, k, z_gan, delta=delta)
        x0_raw = x0_raw.float()
        eps = self.schedule.eps_from_x0(x_t, k, x0_raw)  # eq. 7's noise, from the network's x0
        x0_hat = x0_raw.clamp(-1, 1)
        loss = (eps - eps_true).pow(2).mean() + (x0_hat - x0).abs().mean() + KL_WEIGHT * kl.float()
        loss = loss + STYLE_WEIGHT * style_loss(x0_hat / 2 + 0.5, hr)
        if self.diversity:
            loss = loss + self.diversity * self._mode_seeking(module, x_t, lr_up, k, z_gan, delta, x0_raw, generator)
        if self.discriminator is not None:
            fake_prev = fake_pair(self.schedule, x0_hat, x_t, k, generator)
            self._train_discriminator((x_prev, x_t), fake_prev, k)
            self.discriminator.requires_grad_(False)  # the generator's backward goes through D, not into it
            loss = loss + ADVERSARIAL_WEIGHT * generator_loss(self.discriminator, fake_prev, x_t, k)
        return loss

    def _mode_seeking(self, module: nn.Module, x_t: torch.Tensor, lr_up: torch.Tensor, k: torch.Tensor,
                      z_gan: torch.Tensor, delta: torch.Tensor, x0_raw: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        """The mode-seeking term on half the batch: the same inputs again with fresh latents (GAN and CVAE)."""
        half = max(1, x_t.shape[0] // 2)
        z_other = torch.randn(z_gan[:half].shape, generator=generator, device=z_gan.device)
        delta_other = torch.randn(delta[:half].shape, generator=generator, device=delta.device)
        other, _ = module(x_t[:half].contiguous(memory_format=torch.channels_last), lr_up[:half], k[:half], z_other,
                          delta=delta_other)
        return mode_seeking_loss(x0_raw[:half], other, [z_gan[:half], delta[:half]], [z_other, delta_other])

    def _train_discriminator(self, real: tuple[torch.Tensor, torch.Tensor], fake_prev: torch.Tensor,
                             k: torch.Tensor) -> None:
        assert self.discriminator is not None and self.d_optimizer is not None
        self.discriminator.to(fake_prev.device).requires_grad_(True)
        gamma = R1_GAMMA * R1_EVERY if self._d_steps % R1_EVERY == 0 else 0.0  # lazy R1, scaled to match
        with torch.autocast(fake_prev.device.type, enabled=False):
            loss = discriminator_loss(self.discriminator, (real[0].float(), real[1].float()), fake_prev.float(), k,
                                      r1_gamma=gamma)
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        self.d_optimizer.zero_grad(set_to_none=True)
        self._d_steps += 1

    def extra_state(self) -> dict[str, Any]:
        if self.discriminator is None or self.d_optimizer is None:
            return {}
        return {"discriminator": self.discriminator.state_dict(), "d_optimizer": self.d_optimizer.state_dict(),
                "d_steps": self._d_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.discriminator is not None and self.d_optimizer is not None and state:
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])
            self._d_steps = int(state["d_steps"])

    @torch.no_grad()
    def predict(self, module: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        return restore(module, lr, size, self.schedule, SeededNoise(0)).clamp(0, 1)

    def flops_per_sample(self, patch: int) -> float | None:
        x = torch.zeros(1, 3, patch, patch)
        z = torch.zeros(1, self.config.gan_latent)
        return forward_flops(lambda: self.module(x, x, 1, z, z_latent=torch.zeros(self.module.latent_shape(x))))


def build_task(args: argparse.Namespace) -> LDDPMTask:
    network, config = starting_network(args, load=load_model, presets=PRESETS, fresh=LDDPMNet,
                                       patch_multiple=lambda c: c.size_multiple * 4)
    return LDDPMTask(config, network, args.stage, args.scale, args.diversity)


def export(args: argparse.Namespace) -> int:
    return export_ema(args, stage=args.stage, config_from_json=LDDPMConfig.from_json, save=save_safetensors,
                      trained_by=f"sr-desk train lddpm --stage {args.stage}", degradation="bicubic x2/x3/x4 LR")



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sr-desk train lddpm", description=__doc__.split("\n\n")[0])
    add_training_arguments(p)
    p.add_argument("--stage", choices=STAGES, default="denoise")
    p.add_argument("--preset", choices=sorted(PRESETS), default="compact")
    p.add_argument("--scale", type=int, default=4, help="scale of the validation crops (training mixes x2-x4)")
    p.add_argument("--diversity", type=float, default=0.0,
                   help="weight of the mode-seeking term: outputs for two latents should differ in fine detail "
                        "(sr_desk/training/diversity.py); half a batch more of forward and backward")
    add_export_arguments(p)  # no --convert: LDDPM has no official code or weights (spec 1)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_trainer(build_parser().parse_args(argv), build_task=build_task, export=export)


if __name__ == "__main__":
    sys.exit(main())
