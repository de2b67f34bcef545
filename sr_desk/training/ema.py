"""An exponential moving average of a module's weights: the weights a training run exports."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``module`` whose parameters trail the trained ones, updated with foreach ops.

    ``decay`` is warmed up as ``min(decay, (1 + step) / (10 + step))`` so the
    average follows the model closely at first instead of remembering its
    random (or freshly loaded) start for thousands of steps.
    """

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        shadow = [p for p in self.shadow.parameters()]
        live = [p.detach() for p in module.parameters()]
        torch._foreach_lerp_(shadow, live, 1.0 - self.decay_at(step))
        for s, b in zip(self.shadow.buffers(), module.buffers()):
            s.copy_(b)
