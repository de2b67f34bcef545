"""``reflect_conv3x3`` equals ReflectionPad2d(1) + a 3x3 conv, in values and in gradients."""

import pytest
import torch
from torch import nn

from sr_desk.diffusion.reflect_conv import reflect_conv3x3


def padded_reference(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return conv(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(2, 2), (2, 9), (8, 8), (13, 6), (16, 24)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_equals_padding_first(stride, size, channels_last):
    torch.manual_seed(sum(size) + stride)
    conv = nn.Conv2d(5, 7, 3, stride=stride).double()
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():  # inference: the border-only path
        torch.testing.assert_close(reflect_conv3x3(x, conv), padded_reference(x, conv), rtol=0, atol=1e-12)


def test_the_border_only_path_runs_in_inference(monkeypatch):
    import sr_desk.diffusion.reflect_conv as module

    padded = []
    monkeypatch.setattr(module, "_padded_first", lambda x, conv, bias: padded.append(1) or padded_reference(x, conv))
    conv, x = nn.Conv2d(3, 3, 3), torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        reflect_conv3x3(x, conv)
    assert not padded
    reflect_conv3x3(x, conv)  # autograd records: the padded path, whose backward is cheaper
    assert padded == [1]


def test_gradients_equal_padding_first():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3).double()
    x = torch.randn(1, 4, 10, 7, dtype=torch.float64, requires_grad=True)
    target = torch.randn(1, 4, 10, 7, dtype=torch.float64)

    def gradients(fn):
        conv.zero_grad()
        x.grad = None
        ((fn(x, conv) - target) ** 2).sum().backward()
        return x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()

    for ours, reference in zip(gradients(reflect_conv3x3), gradients(padded_reference), strict=True):
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-10)


def test_under_bf16_autocast_matches_the_padded_convolution():
    torch.manual_seed(1)
    conv = nn.Conv2d(8, 8, 3)
    x = torch.randn(1, 8, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours, reference = reflect_conv3x3(x, conv), padded_reference(x, conv)
    assert ours.dtype == reference.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), reference.float(), rtol=0.02, atol=0.02)


@pytest.mark.parametrize("conv", [nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 5), nn.Conv2d(3, 3, 3, groups=3)])
def test_other_convolutions_take_the_padded_path(conv):
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(reflect_conv3x3(x, conv), padded_reference(x, conv))
