"""The mode-seeking term (sr_desk/training/diversity.py) against closed forms."""

from __future__ import annotations

import pytest
import torch

from sr_desk.training.diversity import DIVERSITY_CEILING, detail_band, mode_seeking_loss


def test_the_detail_band_drops_what_a_4x_shrink_keeps():
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert detail_band(flat).abs().max() < 1e-6
    blocks = torch.rand(1, 3, 4, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)  # constant 4x4 blocks
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 0.2 - 0.1  # zero mean in every block
    band = detail_band(blocks + checker)
    assert torch.allclose(band[..., 4:12, 4:12] - detail_band(blocks)[..., 4:12, 4:12], checker[4:12, 4:12], atol=1e-5)


def test_identical_outputs_score_zero_and_different_ones_the_ratio_up_to_the_ceiling():
    z_a, z_b = [torch.zeros(2, 4)], [torch.full((2, 4), 2.0)]  # mean absolute latent gap 2
    out = torch.zeros(2, 3, 8, 8)
    assert float(mode_seeking_loss(out, out.clone(), z_a, z_b)) == 0.0
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 2 - 1).float() * 0.01  # |band| = 0.01
    ratio = 0.01 / 2
    assert float(mode_seeking_loss(out, out + checker, z_a, z_b)) == pytest.approx(-ratio, rel=1e-4)
    assert float(mode_seeking_loss(out, out + 100 * checker, z_a, z_b)) == pytest.approx(-DIVERSITY_CEILING)


def test_its_gradient_pushes_the_outputs_apart_in_the_detail_band():
    out_a = torch.zeros(1, 1, 8, 8)
    out_b = (0.001 * torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    loss = mode_seeking_loss(out_a, out_b, [torch.zeros(1, 4)], [torch.ones(1, 4)])
    loss.backward()
    step = out_b - 0.01 * out_b.grad
    assert float(mode_seeking_loss(out_a, step, [torch.zeros(1, 4)], [torch.ones(1, 4)])) < float(loss)
