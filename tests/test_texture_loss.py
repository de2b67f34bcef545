"""The texture loss (sr_desk/training/texture.py) against closed forms."""

from __future__ import annotations

import pytest
import torch

from sr_desk.training.texture import local_detail, texture_loss


def stripes(period: int, amplitude: float, size: int = 16, phase: int = 0) -> torch.Tensor:
    """Vertical grey stripes in ``[-1, 1]``: luma steps of ``amplitude`` every ``period`` columns."""
    column = (torch.arange(size) + phase) // period % 2 * amplitude
    return column.expand(1, 3, size, size).clone()


def test_local_detail_is_the_mean_gradient_magnitude_of_luma_per_window():
    flat = torch.zeros(1, 3, 16, 16)
    assert torch.allclose(local_detail(flat), torch.full((1, 1, 2, 2), 1e-4), atol=1e-6)  # sqrt(1e-8)
    # Grey stripes alternating every pixel: each forward difference is the full step, in luma's 219/255 range.
    step = 0.5
    expected = step * (65.481 + 128.553 + 24.966) / 255
    assert torch.allclose(local_detail(stripes(1, step)), torch.full((1, 1, 2, 2), expected), rtol=1e-4)


def test_the_loss_ignores_where_the_texture_lies_but_not_how_much_there_is():
    target = stripes(1, 0.5)
    shifted = stripes(1, 0.5, phase=1)
    assert (shifted - target).abs().mean() > 0.4  # a pixel loss punishes the shift fully
    assert texture_loss(shifted, target).item() == pytest.approx(0.0, abs=1e-6)
    smooth = torch.full_like(target, 0.25)  # the average of the two phases: what L1 alone prefers
    assert texture_loss(smooth, target).item() == pytest.approx(local_detail(target).mean().item() - 1e-4, rel=1e-3)
    assert texture_loss(stripes(1, 0.25), target) < texture_loss(smooth, target)


def test_the_loss_has_gradients_everywhere_even_on_a_flat_prediction():
    prediction = torch.zeros(1, 3, 16, 16, requires_grad=True)
    texture_loss(prediction, stripes(1, 0.5)).backward()
    assert torch.isfinite(prediction.grad).all()


def test_per_sample_weights_scale_each_sample_s_share():
    target = torch.cat([stripes(1, 0.5), stripes(1, 0.5)])
    prediction = torch.cat([stripes(1, 0.5), torch.full((1, 3, 16, 16), 0.25)])  # the second is smooth
    plain = texture_loss(prediction, target)
    assert texture_loss(prediction, target, torch.tensor([1.0, 1.0])) == pytest.approx(plain.item())
    assert texture_loss(prediction, target, torch.tensor([1.0, 0.5])) == pytest.approx(plain.item() / 2)
    assert texture_loss(prediction, target, torch.tensor([0.0, 0.0])) == 0
