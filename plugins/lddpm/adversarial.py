"""LDDPM's adversarial few-step denoising (spec 2.5), as DDGAN builds it.

Real pairs: ``x_{k-1}`` from the forward marginal of the HR image, then one
forward step to ``x_k`` (DDGAN's ``q_sample_pairs``; eq. 14 as printed mixes
this with the predicted noise, spec 2.5). Fake pairs: the same ``x_k``, and
``x_{k-1}`` drawn from the posterior q(x_{k-1} | x_k, x0_hat) with the
generator's x0. A small time-conditioned patch discriminator judges
``[x_{k-1}, x_k]``; non-saturating losses, R1 on real inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sr_desk.diffusion.compact_unet import timestep_embedding
from sr_desk.diffusion.samplers.base import Randomness, standard_normal_like
from sr_desk.diffusion.schedule import NoiseSchedule

__all__ = ["Discriminator", "discriminator_loss", "fake_pair", "generator_loss", "real_pair"]


def real_pair(schedule: NoiseSchedule, x0: torch.Tensor, k: torch.Tensor,
              generator: Randomness) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_{k-1}, x_k)`` from q: the marginal at k - 1 (x0 itself at k = 0), then one forward step."""
    device = x0.device
    noise = standard_normal_like(x0, generator)
    prev_abar = schedule.alphas_cumprod_prev.to(device, x0.dtype)[k].view(-1, 1, 1, 1)
    x_prev = prev_abar.sqrt() * x0 + (1 - prev_abar).sqrt() * noise
    beta = schedule.betas.to(device, x0.dtype)[k].view(-1, 1, 1, 1)
    step_noise = standard_normal_like(x0, generator)
    return x_prev, (1 - beta).sqrt() * x_prev + beta.sqrt() * step_noise


def fake_pair(schedule: NoiseSchedule, x0_hat: torch.Tensor, x_t: torch.Tensor, k: torch.Tensor,
              generator: Randomness) -> torch.Tensor:
    """``x_{k-1}`` drawn from q(x_{k-1} | x_k, x0_hat): the implicit reverse step (eq. 15)."""
    mean, _, log_variance = schedule.posterior(x0_hat, x_t, k)
    noise = standard_normal_like(x_t, generator)
    nonzero = (k > 0).to(x_t.dtype).view(-1, 1, 1, 1)  # no noise on the last step
    return mean + nonzero * (0.5 * log_variance).exp() * noise


class Discriminator(nn.Module):
    """``D([x_{k-1}, x_k], k)`` -> one logit per image: strided convolutions, the step added at every level."""

    def __init__(self, width: int = 32, levels: int = 3):
        super().__init__()
        self.width = width
        self.time = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU())
        self.stem = nn.Conv2d(6, width, 3, padding=1)
        self.blocks = nn.ModuleList()
        self.time_proj = nn.ModuleList()
        channels = width
        for _ in range(levels):
            self.blocks.append(nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1))
            self.time_proj.append(nn.Linear(4 * width, 2 * channels))
            channels *= 2
        self.out = nn.Linear(channels + 1, 1)  # + DDGAN's minibatch standard deviation feature

    def forward(self, x_prev: torch.Tensor, x_t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        emb = self.time(timestep_embedding(k, self.width).to(x_t.dtype))
        h = F.leaky_relu(self.stem(torch.cat([x_prev, x_t], dim=1)), 0.2)
        for block, proj in zip(self.blocks, self.time_proj, strict=True):
            h = F.leaky_relu(block(h) + proj(emb)[:, :, None, None], 0.2)
        pooled = h.mean(dim=(2, 3))
        spread = pooled.std(dim=0, unbiased=False).mean().expand(pooled.shape[0], 1) if pooled.shape[0] > 1 \
            else torch.zeros(pooled.shape[0], 1, device=pooled.device, dtype=pooled.dtype)
        return self.out(torch.cat([pooled, spread], dim=1)).squeeze(1)


def discriminator_loss(d: Discriminator, real: tuple[torch.Tensor, torch.Tensor], fake_prev: torch.Tensor,
                       k: torch.Tensor, r1_gamma: float = 0.05) -> torch.Tensor:
    """softplus(-D(real)) + softplus(D(fake)), plus R1 (gamma / 2 |grad_x D(real)|^2) when ``r1_gamma`` > 0."""
    real_prev, x_t = real
    real_prev = real_prev.detach().requires_grad_(r1_gamma > 0)
    real_logits = d(real_prev, x_t, k)
    loss = F.softplus(-real_logits).mean() + F.softplus(d(fake_prev.detach(), x_t, k)).mean()
    if r1_gamma > 0:
        (grad,) = torch.autograd.grad(real_logits.sum(), real_prev, create_graph=True)
        loss = loss + r1_gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()
    return loss


def generator_loss(d: Discriminator, fake_prev: torch.Tensor, x_t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss softplus(-D(fake)) (DDGAN)."""
    return F.softplus(-d(fake_prev, x_t, k)).mean()
