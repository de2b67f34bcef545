"""The CPU's one-pass Mish: the same function as F.mish, compiled where torch can, F.mish where it cannot."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from sr_desk.diffusion import mish as fast


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test decides afresh whether to compile; the shared compiled kernel is put back after."""
    monkeypatch.setattr(fast, "_kernel", None)
    monkeypatch.setattr(fast, "_given_up", False)
    yield


def test_the_sigmoid_form_is_mish_in_closed_form() -> None:
    x = torch.linspace(-60, 60, 100_001, dtype=torch.float64)
    exact = x * torch.tanh(torch.log1p(torch.exp(x)))
    assert torch.allclose(fast.mish_from_sigmoid(x), exact, rtol=1e-12, atol=1e-300)


def test_the_compiled_kernel_gives_f_mish_on_every_finite_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    values = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    values = values[torch.isfinite(values)]
    monkeypatch.setattr(fast, "COMPILE_FROM_ELEMENTS", 1)
    with torch.no_grad():
        result = fast.mish(values)
    if fast._kernel is None:
        pytest.skip("torch cannot compile here (no C++ compiler): F.mish is used")
    expected = F.mish(values)
    differ = result.float() != expected.float()
    assert torch.all(values[differ] <= -89)  # sigmoid underflows: 0 where F.mish gives under 1e-36
    assert torch.all(expected[differ].float().abs() < 1e-36)


def test_float32_agrees_to_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "COMPILE_FROM_ELEMENTS", 1)
    x = torch.randn(4, 8, 33, 47) * 8
    with torch.no_grad():
        assert torch.allclose(fast.mish(x), F.mish(x), rtol=1e-6, atol=1e-6)


def test_training_and_float64_use_f_mish(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "COMPILE_FROM_ELEMENTS", 1)
    monkeypatch.setattr(fast, "_compile", lambda: pytest.fail("compiled for autograd or float64"))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    fast.mish(x).sum().backward()
    same = x.detach().clone().requires_grad_(True)
    F.mish(same).sum().backward()
    assert torch.equal(x.grad, same.grad)
    with torch.no_grad():
        assert torch.equal(fast.mish(x.detach().double()), F.mish(x.detach().double()))


def test_a_failed_compile_falls_back_to_f_mish_once(
    fresh_state: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    builds: list[int] = []

    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(fast, "_compile", lambda: builds.append(1) or broken)
    monkeypatch.setattr(fast, "COMPILE_FROM_ELEMENTS", 1)
    x = torch.randn(3, 5, 7).bfloat16()
    with torch.no_grad(), caplog.at_level(logging.INFO, logger="sr_desk.diffusion.mish"):
        assert torch.equal(fast.mish(x), F.mish(x))
        assert torch.equal(fast.mish(x), F.mish(x))
    assert builds == [1]
    assert "No working C++ compiler" in caplog.text


def test_sr_desk_compile_0_never_compiles(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast.COMPILE_ENV, "0")
    monkeypatch.setattr(fast, "COMPILE_FROM_ELEMENTS", 1)
    monkeypatch.setattr(fast, "_compile", lambda: pytest.fail("compiled although SR_DESK_COMPILE=0"))
    x = torch.randn(16)
    with torch.no_grad():
        assert torch.equal(fast.mish(x), F.mish(x))


def test_a_compiler_that_cannot_even_load_falls_back_to_f_mish(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> fast.Kernel:
        raise ImportError("No module named 'torch._inductor'")

    monkeypatch.setattr(fast, "_compile", missing)
    monkeypatch.setattr(fast, "COMPILE_FROM_ELEMENTS", 1)
    x = torch.randn(2, 4, 6)
    with torch.no_grad():
        assert torch.equal(fast.mish(x), F.mish(x))
    assert fast._given_up


def test_the_compile_waits_for_a_tensor_that_repays_it(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def spy(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.numel())
        return fast.mish_from_sigmoid(x)

    monkeypatch.setattr(fast, "_compile", lambda: spy)
    monkeypatch.setattr(fast, "COMPILE_FROM_ELEMENTS", 1000)
    with torch.no_grad():
        fast.mish(torch.randn(999))  # small: F.mish, nothing compiled
        assert fast._kernel is None and calls == []
        fast.mish(torch.randn(1000))  # large enough: compiled, and used from then on for every size
        fast.mish(torch.randn(10))
    assert calls == [1000, 10]


def test_the_kernel_is_built_with_the_cpus_vector_instructions(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28: inductor's own ISA probe (a child process loading a test library) crashed on its way out here,
    so every ISA counted as unusable and the kernel was scalar code, no faster than F.mish."""
    from torch._inductor import config, cpu_vec_isa

    if not fast._cpu_has_vector_isa():
        pytest.skip("no vector ISA inductor knows on this CPU")
    monkeypatch.setattr(config.cpp, "vec_isa_ok", None)
    try:
        fast._compile()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"torch cannot compile here: {exc}")
    assert config.cpp.vec_isa_ok and cpu_vec_isa.pick_vec_isa()
