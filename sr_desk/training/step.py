"""The training step in the form a device runs fastest: weights cast once, the loss compiled.

Two levers, each measured alone by ``bench/train_throughput.py``:

* **Precision.** ``fp32``; ``bf16-autocast`` (the fp32 module under
  ``torch.autocast``, which casts every weight on every forward and sends a
  cast's gradient back through another copy); ``bf16``: a bfloat16 working
  copy of the weights, cast once per step after the optimiser, while the
  optimiser and the EMA keep float32 master weights (the CIFAR-10 speedrun's
  "model cast once", with mixed precision's master weights so that small
  updates are not rounded away). Autocast stays on in ``bf16`` for what a
  task feeds in float32 (its inputs, a frozen encoder) and for the operators
  autocast keeps in float32.
* **Compilation.** ``torch.compile`` of the task's loss (forward and, through
  AOTAutograd, backward), which fuses the element-wise work, the casts and the
  padding around the convolutions into few kernels. Random draws from the
  run's generator stay eager (a graph break), so a compiled run draws the same
  numbers as an eager one. If compiling fails, the step says so once and runs
  eagerly from then on, with the step that failed redone from the same state.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["PRECISIONS", "TrainStep", "autocast_for"]

PRECISIONS = ("fp32", "bf16", "bf16-autocast")

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision in ("bf16", "bf16-autocast"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _working_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose floating parameters are bfloat16 (buffers keep their dtype)."""
    working = copy.deepcopy(module)
    for p in working.parameters():
        if p.is_floating_point():
            p.data = p.data.to(torch.bfloat16)
    return working


class TrainStep:
    """Loss, backward, clipping, optimiser and EMA on one batch, in ``precision``, compiled or not."""

    def __init__(self, loss: LossFn, module: nn.Module, params: list[nn.Parameter], optimizer: torch.optim.Optimizer,
                 *, device: torch.device, precision: str, compile: bool, grad_clip: float,
                 compile_mode: str | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.module, self.params, self.optimizer = module, params, optimizer
        self.device, self.precision, self.grad_clip = device, precision, grad_clip
        self._eager_loss = loss
        self._autocast = autocast_for(device, precision)
        self.working = _working_copy(module) if precision == "bf16" else module
        self._working_params = [p for p in self.working.parameters() if p.requires_grad]
        self.compiled = False
        self._loss = loss
        if compile:
            self._loss = torch.compile(loss, mode=compile_mode, dynamic=False)
            self.compiled = True

    def refresh_working_copy(self) -> None:
        """Cast the master weights into the working copy again (after a restore, say)."""
        if self.working is not self.module:
            with torch.no_grad():
                torch._foreach_copy_(self._working_params, self.params)

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns ``(loss, grad_norm)`` as device tensors (no host synchronisation)."""
        if not self.compiled:
            loss = self._forward_backward(lr, hr, generator)
        else:
            random_state = generator.get_state()
            try:
                loss = self._forward_backward(lr, hr, generator)
            except Exception as exc:  # noqa: BLE001 - compilation is an optimisation: eager gives the same step
                self._give_up_compiling(exc)
                generator.set_state(random_state)
                loss = self._forward_backward(lr, hr, generator)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optimizer.step()
        self.refresh_working_copy()
        return loss.detach(), grad_norm

    def _forward_backward(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        for p in self._working_params:
            p.grad = None
        with self._autocast:
            loss = self._loss(self.working, lr, hr, generator)
        loss.backward()
        if self.working is not self.module:
            for master, work in zip(self.params, self._working_params, strict=True):
                master.grad = None if work.grad is None else work.grad.float()
                work.grad = None
        return loss

    def _give_up_compiling(self, exc: BaseException) -> None:
        message = f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); " \
                  "training eagerly"
        print(message, file=sys.stderr)  # the trainers' one channel: each line of their log is a print
        self._loss, self.compiled = self._eager_loss, False
