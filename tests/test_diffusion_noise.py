"""Seeded noise: one stream per seed, whether or not its draws are made ahead on a thread (as on a GPU)."""

from __future__ import annotations

import pytest
import torch

from sr_desk.diffusion import noise as noise_module
from sr_desk.diffusion.noise import SeededNoise

CPU = torch.device("cpu")
SHAPES = [(1, 3, 16, 16)] * 4 + [(2, 5)] + [(1, 3, 16, 16)] * 3 + [(7,)]


def _stream(source: SeededNoise, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    return [source(shape, device=CPU, dtype=dtype) for shape in SHAPES]


def _ahead(seed: int) -> SeededNoise:
    source = SeededNoise(seed)
    source.ahead_on = ("cpu",)  # what a GPU gets, exercised on the CPU
    return source


def test_the_stream_is_torchs_own_normal_stream_for_the_seed() -> None:
    generator = torch.Generator().manual_seed(11)
    expected = [torch.randn(shape, generator=generator) for shape in SHAPES]
    for got, want in zip(_stream(SeededNoise(11)), expected, strict=True):
        assert torch.equal(got, want)


def test_draws_made_ahead_give_the_same_stream_across_changes_of_shape() -> None:
    for got, want in zip(_stream(_ahead(5)), _stream(SeededNoise(5)), strict=True):
        assert torch.equal(got, want)


def test_draws_made_ahead_come_in_the_asked_dtype() -> None:
    got = _stream(_ahead(2), torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 for t in got)
    assert torch.equal(got[3], _stream(SeededNoise(2))[3].bfloat16())


def test_a_failed_draw_ahead_is_made_again_on_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    real = noise_module._draw

    def fails_on_a_thread(shape: tuple[int, ...], generator: torch.Generator, *, pin: bool = False) -> torch.Tensor:
        import threading

        if threading.current_thread().name == "sr-desk-noise":
            raise RuntimeError("no pinned memory left")
        return real(shape, generator, pin=pin)

    monkeypatch.setattr(noise_module, "_draw", fails_on_a_thread)
    for got, want in zip(_stream(_ahead(9)), _stream(SeededNoise(9)), strict=True):
        assert torch.equal(got, want)
