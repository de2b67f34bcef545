"""The domain-shift process and the DoS-SDE solvers against the closed forms of spec dossr.md 2.1-2.6."""

from __future__ import annotations

import math

import pytest
import torch

from sr_desk.diffusion.domain_shift import (
    DomainShiftProcess,
    ddim_sample,
    dos_sde_sample,
    scaled_linear_betas,
    shift_sequence,
    solver_coefficients,
    wavelet_color_fix,
    wavelet_low,
)
from sr_desk.diffusion.samplers.ddim import DDIMSampler

PAPER = DomainShiftProcess.paper()


def test_scaled_linear_schedule_matches_stable_diffusion():
    abar = torch.cumprod(1 - scaled_linear_betas(), 0)
    assert [round(float(abar[i]), 5) for i in (0, 499, 999)] == [0.99915, 0.27767, 0.00466]


def test_shift_sequence_boundary_values():
    eta = shift_sequence(1000, 500)
    expected = {0: 2.5e-6, 100: 0.0964, 200: 0.3470, 299: 0.6530, 399: 0.9036, 499: 1 - 2.5e-6}
    for i, value in expected.items():
        assert float(eta[i]) == pytest.approx(value, abs=5e-5)
    assert 0 < float(eta[0]) and float(eta[499]) < 1, "eta must stay inside (0, 1) below t1"
    assert bool((eta[500:] == 1).all())
    assert bool((eta[1:] >= eta[:-1]).all())


def test_step_grid_and_lambda_on_it():
    assert PAPER.grid(5) == [0, 100, 200, 299, 399, 499]
    assert PAPER.grid(1) == [0, 499]
    lams = [PAPER.lam(i) for i in PAPER.grid(5)]
    assert lams[:5] == pytest.approx([0.029, 0.381, 0.875, 2.392, 12.04], rel=1e-3, abs=5e-4)
    assert lams[5] == pytest.approx(6.5e5, rel=0.01)
    assert math.isinf(PAPER.lam(500))
    with pytest.raises(ValueError):
        PAPER.grid(0)


def test_one_step_transition_agrees_with_the_marginal():
    gen = torch.Generator().manual_seed(0)
    x0, x_hat = torch.randn(1, 3, 8, 8, generator=gen), torch.randn(1, 3, 8, 8, generator=gen)
    for i in (1, 250, 499, 700):
        # Means: the step from the (noise-free) marginal mean lands on the next marginal mean.
        zero = torch.zeros_like(x0)
        stepped = PAPER.step_forward(PAPER.mean(x0, x_hat, i - 1), x0, x_hat, i, zero)
        torch.testing.assert_close(stepped, PAPER.mean(x0, x_hat, i), rtol=0, atol=1e-6)
        # Variances: alpha_i sigma_{i-1}^2 + beta_i = sigma_i^2.
        alpha, beta = float(PAPER.schedule.alphas[i]), float(PAPER.schedule.betas[i])
        assert alpha * PAPER.sigma(i - 1) ** 2 + beta == pytest.approx(PAPER.sigma(i) ** 2, rel=1e-12)


def test_marginal_beyond_t1_forgets_the_hr_image():
    x_hat = torch.rand(2, 3, 4, 4)
    means = [PAPER.mean(torch.rand(2, 3, 4, 4), x_hat, 600) for _ in range(2)]
    torch.testing.assert_close(means[0], means[1])


def test_per_item_indices():
    x0, x_hat, noise = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    batch = PAPER.q_sample(x0, x_hat, torch.tensor([0, 200, 499]), noise)
    for k, i in enumerate((0, 200, 499)):
        torch.testing.assert_close(batch[k : k + 1], PAPER.q_sample(x0[k : k + 1], x_hat[k : k + 1], i, noise[k : k + 1]))


def test_solver_coefficients_against_quadrature():
    for lam_t, lam_s in ((12.04, 2.392), (2.392, 0.875), (0.381, 0.029)):
        lam = torch.logspace(math.log10(lam_s), math.log10(lam_t), 200001, dtype=torch.float64)
        expected = []
        for k in range(3):
            integrand = 2 * lam**-3 * (lam - lam_t) ** k / math.factorial(k)
            expected.append(lam_s**2 * float(torch.trapezoid(integrand, lam)))
        assert solver_coefficients(lam_t, lam_s) == pytest.approx(expected, rel=1e-6)


def test_order_one_without_shift_is_the_ddim_update_with_eta_one():
    """eta_t = 0 everywhere is plain DDPM; the first-order DoS-SDE step is then DDIM(eta = 1)."""
    no_shift = DomainShiftProcess(PAPER.schedule, torch.zeros(1000, dtype=torch.float64), t1=500)
    gen = torch.Generator().manual_seed(3)
    x_t, x0 = torch.randn(1, 3, 8, 8, generator=gen), torch.rand(1, 3, 8, 8, generator=gen)
    noise = torch.randn(1, 3, 8, 8, generator=gen)

    def predict(x: torch.Tensor, i: int) -> torch.Tensor:
        return x0

    # One solver call from 499 to 0 with the sampler's first state replaced by x_t: run it by hand.
    t, s = 499, 0
    c0, _, _ = solver_coefficients(no_shift.lam(t), no_shift.lam(s))
    r2 = (no_shift.lam(s) / no_shift.lam(t)) ** 2
    ours = no_shift.a(s) * (r2 / no_shift.a(t) * x_t + c0 * x0 + no_shift.lam(s) * math.sqrt(1 - r2) * noise)
    ddim = DDIMSampler(no_shift.schedule, eta=1.0)
    eps = no_shift.schedule.eps_from_x0(x_t, t, x0)
    theirs = ddim._step(x0, eps, no_shift.abar(t), no_shift.abar(s), lambda shape, **kw: noise)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # And the sampler itself takes the same path (one step, noise drawn from a stream we control).
    draws = iter([x_t * 0 + (x_t - math.sqrt(no_shift.abar(t)) * torch.zeros_like(x_t)) / no_shift.sigma(t), noise])
    sampled = dos_sde_sample(predict, torch.zeros_like(x_t), no_shift, steps=1, order=1,
                             generator=lambda shape, **kw: next(draws), final_noise=True)
    torch.testing.assert_close(sampled, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_a_perfect_x0_predictor_maps_marginal_onto_marginal(order):
    """With D0 = x0 every update carries the t-marginal onto the s-marginal (spec 2.4); checked at index 0."""
    gen = torch.Generator().manual_seed(order)
    n = 20000
    x0 = torch.full((n, 1, 1, 1), 0.3)
    x_hat = torch.full((n, 1, 1, 1), -0.5)
    out = dos_sde_sample(lambda x, i: x0, x_hat, PAPER, steps=5, order=order, generator=gen, final_noise=True)
    expected_mean = float(PAPER.mean(x0[:1], x_hat[:1], 0))
    assert float(out.mean()) == pytest.approx(expected_mean, abs=4 * PAPER.sigma(0) / math.sqrt(n))
    assert float(out.std()) == pytest.approx(PAPER.sigma(0), rel=0.03)
    # Without the last noise only what x_100 carries over remains: std sigma_0 * r, r = lambda_0 / lambda_100.
    mean_only = dos_sde_sample(lambda x, i: x0, x_hat, PAPER, steps=5, order=order, generator=gen)
    carried = PAPER.sigma(0) * PAPER.lam(0) / PAPER.lam(100)
    assert float(mean_only.mean()) == pytest.approx(expected_mean, abs=4 * carried / math.sqrt(n))
    assert float(mean_only.std()) == pytest.approx(carried, rel=0.03)


def test_intermediate_marginals_with_a_perfect_predictor():
    gen = torch.Generator().manual_seed(9)
    n = 20000
    x0, x_hat = torch.full((n, 1, 1, 1), 0.5), torch.full((n, 1, 1, 1), -0.2)
    states: dict[int, torch.Tensor] = {}

    def predict(x: torch.Tensor, i: int) -> torch.Tensor:
        states[i] = x.clone()
        return x0

    dos_sde_sample(predict, x_hat, PAPER, steps=5, order=3, generator=gen)
    for i in (399, 299, 200, 100):
        assert float(states[i].mean()) == pytest.approx(float(PAPER.mean(x0[:1], x_hat[:1], i)), abs=0.02)
        assert float(states[i].std()) == pytest.approx(PAPER.sigma(i), rel=0.03)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_solver_shapes_determinism_and_callbacks(order):
    x_hat = torch.rand(2, 3, 12, 10) * 2 - 1

    def predict(x: torch.Tensor, i: int) -> torch.Tensor:
        return torch.tanh(x + 0.01 * i)

    calls: list[tuple[int, int]] = []
    run = [dos_sde_sample(predict, x_hat, PAPER, steps=5, order=order, generator=torch.Generator().manual_seed(7),
                          callback=lambda k, total, x0: calls.append((k, total))) for _ in range(2)]
    assert run[0].shape == x_hat.shape and bool(torch.isfinite(run[0]).all())
    torch.testing.assert_close(run[0], run[1], rtol=0, atol=0)
    assert calls[:5] == [(k, 5) for k in range(1, 6)]
    other = dos_sde_sample(predict, x_hat, PAPER, steps=5, order=order, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other, run[0])


def test_orders_differ_only_where_the_prediction_changes():
    x_hat = torch.rand(1, 3, 8, 8)
    varying = [dos_sde_sample(lambda x, i: x * 0.5 + i / 500, x_hat, PAPER, order=k,
                              generator=torch.Generator().manual_seed(1)) for k in (1, 2, 3)]
    assert not torch.allclose(varying[0], varying[1]) and not torch.allclose(varying[1], varying[2])
    with pytest.raises(ValueError):
        dos_sde_sample(lambda x, i: x, x_hat, PAPER, order=4)


def test_plain_ddim_of_the_same_network():
    x_hat = torch.rand(1, 3, 8, 8)
    target = torch.rand(1, 3, 8, 8)
    out = ddim_sample(lambda x, i: target, x_hat, PAPER, steps=5, eta=0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target)
    seen: list[int] = []
    ddim_sample(lambda x, i: seen.append(i) or target, x_hat, PAPER, steps=5, eta=1.0,
                generator=torch.Generator().manual_seed(0))
    assert seen == [499, 399, 299, 200, 100]


def test_wavelet_color_fix():
    image = torch.rand(1, 3, 40, 36)
    torch.testing.assert_close(wavelet_color_fix(image, image), image)
    flat = wavelet_color_fix(torch.full((1, 3, 16, 16), 0.2), torch.full((1, 3, 16, 16), 0.7))
    torch.testing.assert_close(flat, torch.full_like(flat, 0.7))
    # A colour cast on the image is replaced by the reference's colours; the texture stays.
    texture = torch.rand(1, 3, 64, 64) * 0.1
    reference = torch.full((1, 3, 64, 64), 0.5) + texture
    fixed = wavelet_color_fix(reference + torch.tensor([0.2, -0.1, 0.05]).view(1, 3, 1, 1), reference)
    torch.testing.assert_close(fixed, reference, rtol=0, atol=1e-5)
    assert wavelet_low(texture).std() < texture.std() / 5
