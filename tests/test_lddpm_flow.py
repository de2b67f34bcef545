"""LDDPM's conditional flow (issue 15, spec 2.4): exactly invertible, and its log-determinant is the Jacobian's."""

from __future__ import annotations

import torch

from sr_desk_plugins.lddpm.flow import ActNorm, ConditionalFlow, InvertibleConv1x1


def trained_looking_flow(channels=4, condition=3, steps=2):
    torch.manual_seed(0)
    flow = ConditionalFlow(channels, condition, steps=steps, hidden=8).double()
    for step in flow.steps:  # away from the identity start, as after training
        torch.nn.init.normal_(step.coupling.net[-1].weight, std=0.3)
        torch.nn.init.normal_(step.coupling.net[-1].bias, std=0.3)
    return flow


def test_the_flow_is_invertible_to_float_tolerance():
    flow = trained_looking_flow()
    x, c = torch.randn(2, 4, 6, 5, dtype=torch.float64), torch.randn(2, 3, 6, 5, dtype=torch.float64)
    flow.train()
    flow(x, c)  # ActNorm initialises on its first batch
    flow.eval()
    y, _ = flow(x, c)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert torch.allclose(flow.inverse(y, c), x, atol=1e-10)


def test_the_log_determinant_is_that_of_the_jacobian():
    flow = trained_looking_flow(channels=2, condition=1, steps=2)
    flow.eval()
    x, c = torch.randn(1, 2, 2, 2, dtype=torch.float64), torch.randn(1, 1, 2, 2, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 2, 2, 2), c)[0].flatten(), x.flatten())
    _, logdet = flow(x, c)
    assert torch.allclose(logdet[0], torch.linalg.slogdet(jacobian)[1], atol=1e-8)


def test_actnorm_starts_from_zero_mean_unit_variance_and_the_1x1_mix_from_a_rotation():
    norm = ActNorm(3).train()
    x = torch.randn(8, 3, 5, 5) * 4 + 2
    y, _ = norm(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    mix = InvertibleConv1x1(4, torch.Generator().manual_seed(1))
    w = mix.weight()
    assert torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)  # orthogonal at the start: |det| = 1
    assert abs(float(mix.log_s.detach().sum())) < 1e-5
