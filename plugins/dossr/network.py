"""The compact pixel-space DoSSR network (spec 9): a time-conditioned U-Net on ``[x_t, x_hat]``.

It stands in for Stable Diffusion 2.1 with its ControlNet, which fit neither
a desktop CPU nor the project's machines. What is kept is the interface the
sampler needs: ``(x_t, x_hat, t) -> x0_hat`` in ``[-1, 1]``. The output is a
residual on ``x_hat`` (the last convolution starts at zero, so an untrained
network returns the pre-restored input), trained with the official L1 on x0.
Any other module with that call signature can replace it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sr_desk_plugins.dossr.config import DoSSRConfig


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of the step index (``N`` -> ``N x dim``), as in DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv; the time as a per-channel scale and shift; again; plus a 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, time_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the positions of the lowest level (spec 9: attention only there)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class DoSSRUNet(nn.Module):
    """``forward(x_t, x_hat, t)``: the clean image's prediction, same shape as ``x_t`` (sides: ``size_multiple``)."""

    def __init__(self, config: DoSSRConfig):
        super().__init__()
        self.config = config
        width, factor = config.width, config.unshuffle
        time_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        widths = [width * m for m in config.mults]
        self.stem = nn.Conv2d(6 * factor * factor, width, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, current = [width], width
        for level, c in enumerate(widths):
            for _ in range(config.blocks):
                self.down.append(ResBlock(current, c, time_dim))
                current = c
                skips.append(c)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = ResBlock(current, current, time_dim)
        self.attention = SelfAttention(current) if config.attention else nn.Identity()
        self.mid2 = ResBlock(current, current, time_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, c in reversed(list(enumerate(widths))):
            for _ in range(config.blocks + 1):
                self.up.append(ResBlock(current + skips.pop(), c, time_dim))
                current = c
            if level > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.head_norm = nn.GroupNorm(8, current)
        self.head = nn.Conv2d(current, 3 * factor * factor, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x_t: torch.Tensor, x_hat: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        config = self.config
        if isinstance(t, int) or (torch.is_tensor(t) and t.ndim == 0):
            t = torch.full((x_t.shape[0],), int(t), device=x_t.device)
        emb = self.time_mlp(timestep_embedding(t, config.width).to(x_t.dtype))
        h = self.stem(F.pixel_unshuffle(torch.cat([x_t, x_hat], dim=1), config.unshuffle))
        skips = [h]
        blocks = iter(self.down)
        for level in range(len(config.mults)):
            for _ in range(config.blocks):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < len(config.mults) - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid2(self.attention(self.mid(h, emb)), emb)
        blocks = iter(self.up)
        for k, level in enumerate(reversed(range(len(config.mults)))):
            for _ in range(config.blocks + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if level > 0:
                h = self.upsample[k](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        residual = F.pixel_shuffle(self.head(F.silu(self.head_norm(h))), config.unshuffle)
        return x_hat + residual


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the bottom and right sides up to a multiple (replicate where too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)
