"""The compact time-conditioned U-Net that sr-desk's own diffusion methods share.

A DDPM-style U-Net shrunk for a desktop CPU (the specs' section 9): the
input enters as ``unshuffle x unshuffle`` pixel blocks (space-to-depth),
which makes every convolution that many squared times cheaper at a small
cost in fine detail; residual blocks with the step as a per-channel scale
and shift; self-attention only at the lowest level. The last convolution
starts at zero, so an untrained network outputs zeros: a residual on its
conditioning input (DoSSR) or a zero noise estimate (Diff-SR's prior).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CompactUNet", "ResBlock", "SelfAttention", "pad_to_multiple", "timestep_embedding", "way_down"]


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
    """Multi-head self-attention over the positions of the lowest level."""

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


def way_down(
    width: int, widths: Sequence[int], blocks: int, time_dim: int
) -> tuple[nn.ModuleList, nn.ModuleList, list[int]]:
    """A U-Net's way down from a ``width``-channel stem: ``blocks`` residual blocks per level of ``widths``
    channels and a strided convolution between levels; with the channels of its skip connections, stem first."""
    down, downsample = nn.ModuleList(), nn.ModuleList()
    skips, current = [width], width
    for level, c in enumerate(widths):
        for _ in range(blocks):
            down.append(ResBlock(current, c, time_dim))
            current = c
            skips.append(c)
        if level < len(widths) - 1:
            downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            skips.append(c)
    return down, downsample, skips


class CompactUNet(nn.Module):
    """``unet(x, t)``: ``out_channels`` maps the size of ``x`` (sides: multiples of :attr:`size_multiple`).

    ``width`` and ``mults``: channels of the levels; ``blocks``: residual
    blocks per level on the way down (one more on the way up).
    """

    def __init__(self, in_channels: int, out_channels: int, *, width: int, mults: Sequence[int], blocks: int,
                 attention: bool, unshuffle: int):
        super().__init__()
        self.width, self.mults, self.blocks, self.unshuffle = width, tuple(mults), blocks, unshuffle
        time_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        widths = [width * m for m in self.mults]
        self.stem = nn.Conv2d(in_channels * unshuffle * unshuffle, width, 3, padding=1)
        self.down, self.downsample, skips = way_down(width, widths, blocks, time_dim)
        current = widths[-1]
        self.mid = ResBlock(current, current, time_dim)
        self.attention = SelfAttention(current) if attention else nn.Identity()
        self.mid2 = ResBlock(current, current, time_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, c in reversed(list(enumerate(widths))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(current + skips.pop(), c, time_dim))
                current = c
            if level > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.head_norm = nn.GroupNorm(8, current)
        self.head = nn.Conv2d(current, out_channels * unshuffle * unshuffle, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the unshuffle, then one halving per level but the last)."""
        return self.unshuffle * 2 ** (len(self.mults) - 1)

    def unet(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        if isinstance(t, int) or (torch.is_tensor(t) and t.ndim == 0):
            t = torch.full((x.shape[0],), int(t), device=x.device)
        emb = self.time_mlp(timestep_embedding(t, self.width).to(x.dtype))
        h = self.stem(F.pixel_unshuffle(x, self.unshuffle))
        skips = [h]
        blocks = iter(self.down)
        levels = len(self.mults)
        for level in range(levels):
            for _ in range(self.blocks):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < levels - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid2(self.attention(self.mid(h, emb)), emb)
        blocks = iter(self.up)
        for k, level in enumerate(reversed(range(levels))):
            for _ in range(self.blocks + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if level > 0:
                h = self.upsample[k](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return F.pixel_shuffle(self.head(F.silu(self.head_norm(h))), self.unshuffle)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the bottom and right sides up to a multiple (replicate where too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)
