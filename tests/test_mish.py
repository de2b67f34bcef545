"""The CPU's one-pass Mish: the same function as F.mish, a native kernel where one builds, F.mish where not."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from sr_desk.diffusion import mish as fast
from sr_desk.diffusion import native


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test decides afresh whether to build; the shared kernel is put back after."""
    monkeypatch.setattr(fast, "_kernel", None)
    monkeypatch.setattr(fast, "_given_up", False)
    yield


def native_or_skip() -> fast.Kernel:
    try:
        return fast._compile()
    except native.KernelUnavailable as exc:
        pytest.skip(f"no native kernel here: {exc}")


def test_the_one_exponential_form_is_mish_in_closed_form() -> None:
    x = torch.linspace(-60, 60, 100_001, dtype=torch.float64)
    exact = x * torch.tanh(torch.log1p(torch.exp(x)))
    assert torch.allclose(fast.mish_from_sigmoid(x), exact, rtol=1e-12, atol=1e-300)
    p = torch.exp(x.clamp(max=20))
    n = p * (p + 2)
    assert torch.allclose(x * (n / (n + 2)), exact, rtol=1e-8, atol=1e-300)  # what SOURCE computes


def test_the_native_kernel_gives_f_mish_on_every_finite_bfloat16() -> None:
    kernel = native_or_skip()
    values = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    values = values[torch.isfinite(values)]
    assert torch.equal(kernel(values), F.mish(values))
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0])
    assert torch.equal(kernel(specials.bfloat16()).isnan(), F.mish(specials.bfloat16()).isnan())


def test_float32_agrees_to_rounding_in_any_dense_layout() -> None:
    kernel = native_or_skip()
    x = torch.randn(4, 8, 33, 47) * 8
    assert torch.allclose(kernel(x), F.mish(x), rtol=1e-5, atol=1e-6)
    last = x.contiguous(memory_format=torch.channels_last)
    out = kernel(last)
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(out, kernel(x))


def test_non_dense_tensors_training_and_float64_use_f_mish(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "_compile", lambda: pytest.fail("built for autograd, float64 or a strided view"))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    fast.mish(x).sum().backward()
    same = x.detach().clone().requires_grad_(True)
    F.mish(same).sum().backward()
    assert torch.equal(x.grad, same.grad)
    with torch.no_grad():
        assert torch.equal(fast.mish(x.detach().double()), F.mish(x.detach().double()))
        strided = x.detach()[..., ::2]
        assert torch.equal(fast.mish(strided), F.mish(strided))


def test_a_failed_build_falls_back_to_f_mish_once(
    fresh_state: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    builds: list[int] = []

    def broken() -> fast.Kernel:
        builds.append(1)
        raise native.KernelUnavailable("no C compiler (cc, gcc or clang) was found")

    monkeypatch.setattr(fast, "_compile", broken)
    x = torch.randn(3, 5, 7).bfloat16()
    with torch.no_grad(), caplog.at_level(logging.INFO, logger="sr_desk.diffusion.mish"):
        assert torch.equal(fast.mish(x), F.mish(x))
        assert torch.equal(fast.mish(x), F.mish(x))
    assert builds == [1]
    assert "no C compiler" in caplog.text


def test_a_kernel_that_fails_at_run_time_gives_way_to_f_mish(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def crashing(x: torch.Tensor) -> torch.Tensor:
        raise OSError("the library went away")

    monkeypatch.setattr(fast, "_compile", lambda: crashing)
    x = torch.randn(2, 4, 6)
    with torch.no_grad():
        assert torch.equal(fast.mish(x), F.mish(x))
    assert fast._given_up


def test_a_wrong_kernel_is_refused_at_load() -> None:
    with pytest.raises(RuntimeError, match="differs from F.mish"):
        fast._checked(lambda x: F.mish(x) * 1.01)


def test_sr_desk_compile_0_never_builds(fresh_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast.COMPILE_ENV, "0")
    monkeypatch.setattr(fast, "_compile", lambda: pytest.fail("built although SR_DESK_COMPILE=0"))
    x = torch.randn(16)
    with torch.no_grad():
        assert torch.equal(fast.mish(x), F.mish(x))


def test_kernels_are_built_once_into_the_folder_asked_for(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.KERNEL_DIR_ENV, str(tmp_path))
    source = "int sr_desk_answer(void) { return 42; }\n"
    try:
        library = native.load("answer", source)
    except native.KernelUnavailable as exc:
        pytest.skip(f"no C compiler here: {exc}")
    assert library.sr_desk_answer() == 42
    built = [p for p in tmp_path.iterdir() if p.name.startswith("answer-")]
    assert len(built) == 1 and not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]
    stamp = built[0].stat().st_mtime_ns
    assert native.load("answer", source).sr_desk_answer() == 42 and built[0].stat().st_mtime_ns == stamp  # cached
    with pytest.raises(native.KernelUnavailable, match="failed"):
        native.load("broken", "this is not C")


def test_without_a_compiler_the_kernel_is_unavailable(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.KERNEL_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(native, "_compilers", lambda: [])
    with pytest.raises(native.KernelUnavailable, match="no C compiler"):
        native.load("answer", "int f(void) { return 1; }\n")


def test_the_editors_warm_up_job_builds_the_kernel_on_the_worker(fresh_state: None) -> None:
    """Issue 28: the editor builds or loads the kernel before the first job, on the worker."""
    from sr_desk.engine.devices import warm_compiled_kernels
    from sr_desk.engine.worker import JobState, Worker

    with Worker(device="cpu") as worker:
        job = worker.submit(warm_compiled_kernels, label="warm-up")
        assert job.wait(300) and job.state is JobState.FINISHED
    assert fast._kernel is not None or fast._given_up
    small = torch.randn(1, 8, 4, 4).bfloat16()
    with torch.no_grad():
        assert torch.equal(fast.mish(small), F.mish(small))


def test_mish_add_is_mish_then_the_addition_in_one_pass() -> None:
    """Issue 28: a ResBlock's residual is added in Mish's own pass, with the two ops' rounding."""
    native_or_skip()
    x = (torch.randn(1, 16, 9, 13) * 6).bfloat16().contiguous(memory_format=torch.channels_last)
    add = torch.randn_like(x)
    with torch.no_grad():
        assert torch.equal(fast.mish_add(x, add), F.mish(x) + add)
        wide = x.float()
        torch.testing.assert_close(fast.mish_add(wide, add.float()), F.mish(wide) + add.float(), rtol=1e-5, atol=1e-6)
        other_layout = add.contiguous()  # not the same strides: the two ops, as before
        assert torch.equal(fast.mish_add(x, other_layout), F.mish(x) + other_layout)
