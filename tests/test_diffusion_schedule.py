"""Noise schedules: SRDiff's cosine values, the forward process, the posterior and the configs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sr_desk.diffusion.schedule import NoiseSchedule, cosine_schedule, from_betas, linear_schedule
from sr_desk.diffusion.schedule import OFFICIAL_BUFFER_NAMES


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return cosine_schedule()


# -- SRDiff's cosine schedule (spec 3.2; paper t = index + 1) ---------------------------------------

SPEC_VALUES = [
    ("betas", 1, 6.313e-4),
    ("alphas_cumprod", 1, 0.99937),
    ("alphas_cumprod", 10, 0.97209),
    ("alphas_cumprod", 25, 0.84701),
    ("alphas_cumprod", 30, 0.78691),
    ("alphas_cumprod", 50, 0.49384),
    ("alphas_cumprod", 70, 0.20312),
    ("alphas_cumprod", 90, 0.02409),
    ("betas", 99, 0.74994),
    ("alphas_cumprod", 99, 2.4286e-4),
    ("betas", 100, 0.999),
]


@pytest.mark.parametrize(("buffer", "t", "expected"), SPEC_VALUES)
def test_cosine_schedule_matches_the_spec_values(schedule, buffer, t, expected):
    assert getattr(schedule, buffer)[t - 1].item() == pytest.approx(expected, rel=1e-4)


def test_cosine_schedule_shape_and_the_clipped_last_step(schedule):
    assert schedule.T == 100
    for tensor in (schedule.betas, schedule.alphas_cumprod, schedule.posterior_variance):
        assert tensor.dtype == torch.float64 and tensor.shape == (100,)
    # Only the last beta is clipped (raw value 1.0), so abar_100 is tiny but not 0.
    assert schedule.alphas_cumprod[-1].item() == pytest.approx(2.43e-7, rel=2e-3)
    assert bool((schedule.betas[:-1] < 0.999).all())
    assert torch.all(schedule.alphas_cumprod[1:] < schedule.alphas_cumprod[:-1])


def test_derived_tensors_follow_from_betas(schedule):
    assert torch.allclose(schedule.alphas, 1 - schedule.betas, rtol=0, atol=0)
    assert torch.allclose(schedule.alphas_cumprod, torch.cumprod(schedule.alphas, 0), rtol=1e-15)
    assert schedule.alphas_cumprod_prev[0].item() == 1.0
    assert torch.equal(schedule.alphas_cumprod_prev[1:], schedule.alphas_cumprod[:-1])


def test_linear_schedule_and_from_betas():
    linear = linear_schedule(10, 1e-3, 0.2)
    assert linear.T == 10
    assert linear.betas[0].item() == pytest.approx(1e-3) and linear.betas[-1].item() == pytest.approx(0.2)
    same = from_betas(linear.betas.tolist())
    assert torch.equal(same.alphas_cumprod, linear.alphas_cumprod)
    with pytest.raises(ValueError):
        from_betas([0.1, 1.0])
    with pytest.raises(ValueError):
        from_betas([0.0, 0.1])
    with pytest.raises(ValueError):
        cosine_schedule(0)


# -- forward process q(x_t | x_0) -------------------------------------------------------------------


@pytest.mark.parametrize("i", [0, 29, 99])
def test_q_sample_has_the_closed_form_mean_and_variance(schedule, i):
    generator = torch.Generator().manual_seed(i)
    x0 = torch.tensor([-0.8, 0.0, 0.3, 1.0])
    noise = torch.randn(20000, 4, generator=generator)
    x_t = schedule.q_sample(x0.expand(20000, 4), i, noise)
    abar = schedule.alphas_cumprod[i].item()
    assert torch.allclose(x_t.mean(0), math.sqrt(abar) * x0, atol=0.03)
    assert torch.allclose(x_t.var(0), torch.full((4,), 1 - abar), rtol=0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("i", [0, 50, 98])
def test_predict_x0_and_eps_from_x0_invert_q_sample(schedule, dtype, i):
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 4, 4, generator=generator, dtype=dtype) * 2 - 1
    noise = torch.randn(2, 3, 4, 4, generator=generator, dtype=dtype)
    x_t = schedule.q_sample(x0, i, noise)
    assert x_t.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    assert torch.allclose(schedule.predict_x0(x_t, i, noise), x0, atol=tol * 10, rtol=0)
    assert torch.allclose(schedule.eps_from_x0(x_t, i, x0), noise, atol=tol * 10, rtol=0)


def test_a_tensor_of_indices_picks_one_step_per_batch_item(schedule):
    generator = torch.Generator().manual_seed(2)
    x0 = torch.randn(3, 1, 2, 2, generator=generator)
    noise = torch.randn(3, 1, 2, 2, generator=generator)
    steps = torch.tensor([0, 40, 99])
    batched = schedule.q_sample(x0, steps, noise)
    for b, i in enumerate(steps.tolist()):
        assert torch.equal(batched[b], schedule.q_sample(x0[b], i, noise[b]))


@pytest.mark.parametrize("bad", [-1, 100, True])
def test_out_of_range_indices_are_refused(schedule, bad):
    with pytest.raises(IndexError):
        schedule.q_sample(torch.zeros(1), bad, torch.zeros(1))


# -- posterior q(x_{t-1} | x_t, x_0) ----------------------------------------------------------------


@pytest.mark.parametrize("i", [0, 1, 10, 50, 99])
def test_posterior_matches_the_closed_forms(schedule, i):
    t = i + 1
    beta = schedule.betas[i].item()
    abar = math.prod(1 - b for b in schedule.betas[:t].tolist())
    abar_prev = math.prod(1 - b for b in schedule.betas[: t - 1].tolist())
    coef1 = beta * math.sqrt(abar_prev) / (1 - abar)
    coef2 = (1 - abar_prev) * math.sqrt(1 - beta) / (1 - abar)
    variance = beta * (1 - abar_prev) / (1 - abar)
    x0, x_t = torch.tensor([0.5, -0.25], dtype=torch.float64), torch.tensor([1.5, 0.1], dtype=torch.float64)
    mean, var, log_var = schedule.posterior(x0, x_t, i)
    assert torch.allclose(mean, coef1 * x0 + coef2 * x_t, rtol=1e-12, atol=1e-15)
    assert var.item() == pytest.approx(variance, rel=1e-12, abs=1e-300)
    assert log_var.item() == pytest.approx(math.log(max(variance, 1e-20)), rel=1e-12)


@pytest.mark.parametrize("i", [1, 5, 49, 98, 99])
def test_posterior_is_the_product_of_the_two_forward_gaussians(schedule, i):
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): add the precisions, complete the square."""
    beta = schedule.betas[i].item()
    abar_prev = schedule.alphas_cumprod[i - 1].item()
    x0, x_t = torch.tensor([0.7, -0.9], dtype=torch.float64), torch.tensor([-0.4, 2.0], dtype=torch.float64)
    # As functions of x_{t-1}: N(x_t; sqrt(alpha) x_{t-1}, beta) and N(x_{t-1}; sqrt(abar_prev) x0, 1 - abar_prev).
    precision = (1 - beta) / beta + 1 / (1 - abar_prev)
    linear_term = math.sqrt(1 - beta) / beta * x_t + math.sqrt(abar_prev) / (1 - abar_prev) * x0
    mean, var, _ = schedule.posterior(x0, x_t, i)
    assert var.item() == pytest.approx(1 / precision, rel=1e-10)
    assert torch.allclose(mean, linear_term / precision, rtol=1e-10, atol=1e-12)


def test_the_first_step_posterior_is_x0_itself(schedule):
    x0, x_t = torch.tensor([0.3]), torch.tensor([0.9])
    mean, var, log_var = schedule.posterior(x0, x_t, 0)
    assert torch.allclose(mean, x0, atol=1e-7)
    assert var.item() == 0.0 and log_var.item() == pytest.approx(math.log(1e-20))


def test_posterior_keeps_the_input_dtype(schedule):
    x = torch.ones(1, 3, 2, 2, dtype=torch.float16)
    mean, var, log_var = schedule.posterior(x, x, 10)
    assert mean.dtype == var.dtype == log_var.dtype == torch.float16 and mean.shape == x.shape


# -- official buffers and configs ------------------------------------------------------------------


def test_official_buffers(schedule):
    buffers = schedule.official_buffers()
    assert list(buffers) == list(OFFICIAL_BUFFER_NAMES) and len(buffers) == 12
    for value in buffers.values():
        assert value.dtype == torch.float32 and value.shape == (100,)
    abar = schedule.alphas_cumprod.float()
    assert torch.allclose(buffers["sqrt_recipm1_alphas_cumprod"] ** 2, 1 / abar - 1, rtol=1e-5)
    assert torch.allclose(buffers["log_one_minus_alphas_cumprod"].exp(), 1 - abar, rtol=1e-5)
    assert buffers["posterior_log_variance_clipped"][0].item() == pytest.approx(math.log(1e-20))


@pytest.mark.parametrize(
    "make",
    [
        cosine_schedule,
        lambda: cosine_schedule(50, s=0.01, max_beta=0.99),
        lambda: linear_schedule(20, 1e-4, 0.05),
        lambda: from_betas([0.01, 0.02, 0.5]),
    ],
)
def test_schedule_config_round_trips_through_json(make):
    schedule = make()
    config = json.loads(json.dumps(schedule.to_config()))
    again = NoiseSchedule.from_config(config)
    assert again == schedule and hash(again) == hash(schedule)
    assert again.to_config() == schedule.to_config()
    assert torch.equal(again.posterior_variance, schedule.posterior_variance)


def test_schedule_config_is_frozen_and_checked(schedule):
    config = schedule.to_config()
    config["timesteps"] = 7  # a copy: the schedule is unchanged
    assert schedule.to_config()["timesteps"] == 100
    with pytest.raises(AttributeError):
        schedule.betas = torch.zeros(100, dtype=torch.float64)
    assert schedule != cosine_schedule(99)
    with pytest.raises(ValueError):
        NoiseSchedule.from_config({"kind": "sigmoid"})
    with pytest.raises(ValueError):
        NoiseSchedule.from_config({"kind": "cosine", "steps": 100})


def test_the_coarse_vp_schedule_is_ddgan_s_closed_form():
    import math

    from sr_desk.diffusion.schedule import NoiseSchedule, vp_coarse_schedule

    schedule = vp_coarse_schedule(4)
    assert schedule.T == 4 and NoiseSchedule.from_config(schedule.to_config()) == schedule

    def log_mean(t):
        return -0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1

    times = [1e-3 + (1 - 1e-3) * k / 4 for k in range(5)]
    expected = [math.exp(2 * log_mean(t) - 2 * log_mean(times[0])) for t in times[1:]]
    assert torch.allclose(schedule.alphas_cumprod, torch.tensor(expected, dtype=torch.float64), rtol=1e-12)
    assert float(schedule.alphas_cumprod[-1]) < 1e-3  # the last coarse step is (nearly) pure noise
    # the posterior step DDGAN samples from: mean and variance of q(x_{k-1} | x_k, x0), none at k = 0
    x0, x_t = torch.rand(1, 1, 2, 2, dtype=torch.float64), torch.rand(1, 1, 2, 2, dtype=torch.float64)
    _, variance, _ = schedule.posterior(x0, x_t, 0)
    assert float(variance.max()) == 0.0
