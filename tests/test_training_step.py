"""The training step's levers: weights cast once with float32 masters, and the compiled loss."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sr_desk.training.step import TrainStep

BF16_TOLERANCE = dict(rtol=2e-2, atol=2e-3)


class SmallNet(nn.Module):
    """Reflection-padded convolutions and Mish, the operators of the shipped networks."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Conv2d(3, 8, 3)
        self.body = nn.Conv2d(8, 8, 3)
        self.tail = nn.Conv2d(8, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.mish(self.head(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        h = h + F.mish(self.body(F.pad(h, (1, 1, 1, 1), mode="reflect")))
        return x + self.tail(F.pad(h, (1, 1, 1, 1), mode="reflect"))


def noisy_l1(module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A loss that draws from the run's generator, as the diffusion losses do."""
    noise = 0.1 * torch.randn(hr.shape, generator=generator)
    return (module(hr + noise).float() - hr).abs().mean()


def make_step(precision: str, compile: bool = False) -> tuple[TrainStep, nn.Module]:
    module = SmallNet().to(memory_format=torch.channels_last)
    params = list(module.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-3, foreach=True)
    step = TrainStep(noisy_l1, module, params, optimizer, device=torch.device("cpu"), precision=precision,
                     compile=compile, grad_clip=1.0)
    return step, module


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    hr = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return F.avg_pool2d(hr, 4), hr.contiguous(memory_format=torch.channels_last)


def gradients_of(step: TrainStep, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss and the master gradients of one forward and backward (no optimiser step)."""
    lr, hr = batch()
    loss = step._forward_backward(lr, hr, generator)
    return loss.detach().float(), [p.grad.clone() for p in step.params]


def test_cast_once_keeps_float32_masters_and_a_bfloat16_working_copy():
    step, module = make_step("bf16")
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert all(p.dtype == torch.bfloat16 for p in step.working.parameters())
    step(*batch(), torch.Generator().manual_seed(0))
    for master, work in zip(module.parameters(), step.working.parameters(), strict=True):
        assert torch.equal(work, master.detach().to(torch.bfloat16))  # re-cast after the optimiser's update
        assert master.grad is not None and master.grad.dtype == torch.float32


def test_cast_once_gives_the_autocast_loss_and_gradients_within_bf16_tolerance():
    autocast_loss, autocast_grads = gradients_of(make_step("bf16-autocast")[0], torch.Generator().manual_seed(0))
    once_loss, once_grads = gradients_of(make_step("bf16")[0], torch.Generator().manual_seed(0))
    fp32_loss, fp32_grads = gradients_of(make_step("fp32")[0], torch.Generator().manual_seed(0))
    torch.testing.assert_close(once_loss, autocast_loss, **BF16_TOLERANCE)
    torch.testing.assert_close(once_loss, fp32_loss, **BF16_TOLERANCE)
    for once, auto, fp32 in zip(once_grads, autocast_grads, fp32_grads, strict=True):
        scale = fp32.abs().max()
        torch.testing.assert_close(once / scale, fp32 / scale, rtol=0, atol=3e-2)
        torch.testing.assert_close(auto / scale, fp32 / scale, rtol=0, atol=3e-2)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_step_gives_the_eager_loss_and_gradients(precision):
    eager_loss, eager_grads = gradients_of(make_step(precision)[0], torch.Generator().manual_seed(0))
    compiled = make_step(precision, compile=True)[0]
    compiled_loss, compiled_grads = gradients_of(compiled, torch.Generator().manual_seed(0))
    assert compiled.compiled  # it compiled, rather than falling back
    tolerance = BF16_TOLERANCE if precision == "bf16" else dict(rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(compiled_loss, eager_loss, **tolerance)
    for c, e in zip(compiled_grads, eager_grads, strict=True):
        scale = e.abs().max()
        torch.testing.assert_close(c / scale, e / scale, rtol=0, atol=tolerance["atol"] * 10)


def test_a_compile_failure_falls_back_to_the_same_eager_step(monkeypatch, capsys):
    calls = []

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            calls.append(1)
            torch.randn(3, generator=args[3])  # it consumed randomness before failing
            raise RuntimeError("inductor: no C++ compiler\nmore detail")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    falling, module = make_step("fp32", compile=True)
    eager, reference = make_step("fp32")
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for _ in range(2):
        falling(*batch(), g1)
        eager(*batch(), g2)
    assert calls == [1] and not falling.compiled
    assert "torch.compile failed (RuntimeError: inductor: no C++ compiler); training eagerly" in capsys.readouterr().err
    for a, b in zip(module.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)  # the failed step was redone from the same random state


def test_refresh_after_a_restore_brings_the_working_copy_to_the_loaded_weights():
    step, module = make_step("bf16")
    loaded = copy.deepcopy(module.state_dict())
    for value in loaded.values():
        value.add_(1.0)
    module.load_state_dict(loaded)
    step.refresh_working_copy()
    for master, work in zip(module.parameters(), step.working.parameters(), strict=True):
        assert torch.equal(work, master.detach().to(torch.bfloat16))


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        make_step("fp8")
