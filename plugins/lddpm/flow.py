"""LDDPM's conditional Glow on the fused bottleneck features (spec 2.4, section 9).

One flow step is ActNorm, an invertible 1x1 convolution (LU-parameterised,
so its log-determinant is a sum) and an affine coupling whose scale and shift
network also sees the LR encoding tau(LR) (the paper replaces Glow's mask by
it, SRFlow-style). The paper stacks three levels with squeezes; section 9's
lite keeps the mechanism at one resolution without squeezes, so any
bottleneck side works. Every transform is exactly invertible, and ``forward``
returns the log-determinant of the Jacobian, so the flow can be trained as a
likelihood (eq. 12) or, as eq. 18 has it, only through the other losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ActNorm", "AffineCoupling", "ConditionalFlow", "FlowStep", "InvertibleConv1x1"]


class ActNorm(nn.Module):
    """Per-channel scale and bias, set from the first batch so that it leaves zero mean and unit variance."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def _initialise(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-std.log())
        self.initialised.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialised):
            self._initialise(x)
        y = (x + self.bias) * self.log_scale.exp()
        return y, self.log_scale.sum().expand(x.shape[0]) * x.shape[2] * x.shape[3]

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * (-self.log_scale).exp() - self.bias


class InvertibleConv1x1(nn.Module):
    """A 1x1 convolution W = P L (U + diag(s)), with P fixed: log|det W| = sum(log|s|) (Glow, LU form)."""

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(s.abs().log())

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.p @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        logdet = self.log_s.sum() * x.shape[2] * x.shape[3]
        return F.conv2d(x, w[:, :, None, None]), logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, torch.linalg.inv(self.weight())[:, :, None, None])


class AffineCoupling(nn.Module):
    """The second half of the channels scaled and shifted by a network of the first half and the condition.

    The scale is ``sigmoid(h + 2)`` (Glow's stable form, in (0, 1)); the
    network's last convolution starts at zero, so a new coupling is close
    to the identity.
    """

    def __init__(self, channels: int, condition_channels: int, hidden: int = 64):
        super().__init__()
        self.half = channels // 2
        self.net = nn.Sequential(
            nn.Conv2d(self.half + condition_channels, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 1), nn.SiLU(),
            nn.Conv2d(hidden, 2 * (channels - self.half), 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, shift = self.net(torch.cat([kept, condition], dim=1)).chunk(2, dim=1)
        return torch.sigmoid(h + 2.0), shift

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept, changed = x[:, : self.half], x[:, self.half :]
        scale, shift = self._scale_shift(kept, condition)
        out = torch.cat([kept, (changed + shift) * scale], dim=1)
        return out, scale.log().flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        kept, changed = y[:, : self.half], y[:, self.half :]
        scale, shift = self._scale_shift(kept, condition)
        return torch.cat([kept, changed / scale - shift], dim=1)


class FlowStep(nn.Module):
    """ActNorm, invertible 1x1 convolution, conditional affine coupling."""

    def __init__(self, channels: int, condition_channels: int, hidden: int = 64,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.norm = ActNorm(channels)
        self.mix = InvertibleConv1x1(channels, generator)
        self.coupling = AffineCoupling(channels, condition_channels, hidden)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, a = self.norm(x)
        x, b = self.mix(x)
        x, c = self.coupling(x, condition)
        return x, a + b + c

    def inverse(self, y: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.norm.inverse(self.mix.inverse(self.coupling.inverse(y, condition)))


class ConditionalFlow(nn.Module):
    """``steps`` flow steps at one resolution (the shape is preserved); ``forward`` -> (output, log|det J|)."""

    def __init__(self, channels: int, condition_channels: int, steps: int = 2, hidden: int = 64, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)  # the 1x1 convolutions' rotations, reproducibly
        self.steps = nn.ModuleList(FlowStep(channels, condition_channels, hidden, generator) for _ in range(steps))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for step in self.steps:
            x, part = step(x, condition)
            logdet = logdet + part
        return x, logdet

    def inverse(self, y: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        for step in reversed(self.steps):
            y = step.inverse(y, condition)
        return y
