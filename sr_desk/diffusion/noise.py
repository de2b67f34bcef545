"""Where a sampler's random numbers come from.

Noise is drawn on the CPU from a seeded generator and then moved to the
device, so a seed gives the same picture on a CPU, a GPU or a Mac. Blending
two sources (latent interpolation) draws from both in lockstep: at weight 0
the result is exactly the first source's stream, at 1 the second's, so the
slider's ends reproduce the two seeds' results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch


class NoiseSource(Protocol):
    def __call__(self, shape: Sequence[int], *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """A standard normal tensor of ``shape``; successive calls continue the stream."""
        ...


class SeededNoise:
    """A reproducible standard-normal stream from one seed."""

    def __init__(self, seed: int):
        self.seed = seed
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def __call__(self, shape: Sequence[int], *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        noise = torch.randn(tuple(shape), generator=self.generator, dtype=torch.float32)
        return noise.to(device=device, dtype=dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation: keeps the norm of Gaussian noise, which a straight line shrinks by up to 1/sqrt(2)."""
    if weight <= 0:
        return a
    if weight >= 1:
        return b
    a64, b64 = a.double().flatten(), b.double().flatten()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-12)
    angle = torch.arccos(cos.clamp(-1.0, 1.0))
    if angle.abs() < 1e-6:
        return torch.lerp(a, b, weight)
    sin = torch.sin(angle)
    wa = (torch.sin((1 - weight) * angle) / sin).item()
    wb = (torch.sin(weight * angle) / sin).item()
    return (wa * a.double() + wb * b.double()).to(a.dtype)


def blend(a: torch.Tensor, b: torch.Tensor, weight: float, mode: str = "slerp") -> torch.Tensor:
    """``a`` at weight 0, ``b`` at 1; ``mode`` is ``"slerp"`` or ``"linear"`` (the paper's)."""
    if mode == "linear":
        if weight <= 0:
            return a
        if weight >= 1:
            return b
        return (1 - weight) * a + weight * b
    if mode == "slerp":
        return slerp(a, b, weight)
    raise ValueError(f"unknown blend mode {mode!r} (slerp or linear)")


class BlendedNoise:
    """Draws from two streams in lockstep and blends them.

    Per-step noise is always blended spherically, whatever the latent blend:
    a linear blend of fresh noise would under-noise every step of the
    reverse process and blur the result.
    """

    def __init__(self, a: NoiseSource, b: NoiseSource, weight: float):
        self.a, self.b, self.weight = a, b, weight

    def __call__(self, shape: Sequence[int], *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return slerp(self.a(shape, device=device, dtype=dtype), self.b(shape, device=device, dtype=dtype), self.weight)
