"""Samplers: step selection, seeding, callbacks, exactness on an oracle, DDIM = DDPM, DPM-Solver++ order."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sr_desk.diffusion.samplers import (
    SAMPLER_NAMES,
    AncestralSampler,
    DDIMSampler,
    DPMSolverPlusPlus2MSampler,
    Sampler,
    make_sampler,
)
from sr_desk.diffusion.schedule import NoiseSchedule, cosine_schedule

SHAPE = (2, 3, 4, 4)


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return cosine_schedule()


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def toy_predictor(x: torch.Tensor, i: int) -> torch.Tensor:
    """Elementwise, so every pixel of a batch is an independent sample; depends on i like a network."""
    return 0.3 * x + 0.05 * torch.sin(x + 0.1 * i)


def oracle_for(schedule: NoiseSchedule, x0: torch.Tensor):
    """The perfect noise predictor for a known x0: the eps that explains x_t exactly."""
    return lambda x, i: schedule.eps_from_x0(x, i, x0)


ALL_SAMPLERS = [
    ("ancestral", None, {}),
    ("ddim", None, {"eta": 1.0}),
    ("ddim", 10, {}),
    ("ddim", 10, {"eta": 0.5}),
    ("dpm++2m", 5, {}),
    ("dpm++2m", 20, {}),
]


def sampler_id(case) -> str:
    name, steps, options = case
    return f"{name}-{steps}-" + "-".join(f"{k}{v}" for k, v in options.items())


# -- registry and configs ---------------------------------------------------------------------------


def test_registry(schedule):
    assert SAMPLER_NAMES == ("ancestral", "ddim", "dpm++2m")
    assert isinstance(make_sampler("ancestral", schedule), AncestralSampler)
    assert isinstance(make_sampler("ddim", schedule, 10, eta=0.3), DDIMSampler)
    assert isinstance(make_sampler("dpm++2m", schedule, 5), DPMSolverPlusPlus2MSampler)
    with pytest.raises(ValueError):
        make_sampler("euler", schedule)
    with pytest.raises(TypeError):
        make_sampler("dpm++2m", schedule, 5, eta=0.3)


def test_bad_settings_are_refused(schedule):
    with pytest.raises(ValueError):
        AncestralSampler(schedule, 10)
    with pytest.raises(ValueError):
        DDIMSampler(schedule, 0)
    with pytest.raises(ValueError):
        DDIMSampler(schedule, 101)
    with pytest.raises(ValueError):
        DDIMSampler(schedule, 10, eta=1.5)
    with pytest.raises(ValueError):
        DDIMSampler(schedule, 10).timesteps(100)


@pytest.mark.parametrize("case", ALL_SAMPLERS + [("ancestral", 100, {})], ids=sampler_id)
def test_sampler_config_round_trips_through_json(schedule, case):
    name, steps, options = case
    sampler = make_sampler(name, schedule, steps, clip_x0=False, **options)
    config = json.loads(json.dumps(sampler.to_config()))
    assert config["name"] == name and config["steps"] == steps and config["clip_x0"] is False
    again = Sampler.from_config(config, schedule)
    assert type(again) is type(sampler) and again.to_config() == sampler.to_config()
    assert type(sampler).from_config(config, schedule).to_config() == config
    other = next(cls for cls in (AncestralSampler, DDIMSampler) if cls is not type(sampler))
    with pytest.raises(ValueError):
        other.from_config(config, schedule)


# -- which steps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 7, 10, 20, 33, 50, 99, 100])
@pytest.mark.parametrize("start", [None, 99, 70, 49, 10, 1, 0])
def test_timesteps_are_an_even_descending_subset(schedule, steps, start):
    indices = DDIMSampler(schedule, steps).timesteps(start)
    top = 99 if start is None else start
    assert len(indices) == min(steps, top + 1)
    assert indices[0] == top
    assert all(a > b for a, b in zip(indices, indices[1:], strict=False))
    assert set(indices) <= set(range(top + 1))
    if len(indices) > 1:
        assert indices[-1] == 0
        gaps = [a - b for a, b in zip(indices, indices[1:], strict=False)]
        assert max(gaps) - min(gaps) <= 1


def test_timesteps_default_to_every_index(schedule):
    assert DDIMSampler(schedule).timesteps() == list(range(99, -1, -1))
    assert DPMSolverPlusPlus2MSampler(schedule).timesteps(49) == list(range(49, -1, -1))
    assert AncestralSampler(schedule).timesteps() == list(range(99, -1, -1))
    assert AncestralSampler(schedule, 100).timesteps(30) == list(range(30, -1, -1))
    assert DDIMSampler(schedule, 10).timesteps() == [99, 88, 77, 66, 55, 44, 33, 22, 11, 0]


@pytest.mark.parametrize("case", ALL_SAMPLERS, ids=sampler_id)
def test_a_partial_start_visits_only_lower_indices(schedule, case):
    name, steps, options = case
    sampler = make_sampler(name, schedule, steps, **options)
    seen: list[int] = []

    def predictor(x, i):
        seen.append(i)
        return toy_predictor(x, i)

    sampler.sample(predictor, torch.randn(SHAPE, generator=seeded(0)), start=49, generator=seeded(1))
    assert seen == sampler.timesteps(49) and seen[0] == 49 and max(seen) <= 49


# -- seeds, callbacks, cancelling --------------------------------------------------------------------


@pytest.mark.parametrize("case", ALL_SAMPLERS, ids=sampler_id)
def test_same_seed_same_result(schedule, case):
    name, steps, options = case
    sampler = make_sampler(name, schedule, steps, **options)
    x = torch.randn(SHAPE, generator=seeded(0))
    first = sampler.sample(toy_predictor, x, generator=seeded(7))
    second = sampler.sample(toy_predictor, x.clone(), generator=seeded(7))
    assert torch.equal(first, second)
    other = sampler.sample(toy_predictor, x, generator=seeded(8))
    stochastic = name == "ancestral" or options.get("eta", 0) > 0
    assert torch.equal(first, other) != stochastic


def test_the_noise_does_not_depend_on_the_input(schedule):
    """With a linear predictor and no clamp the output is affine in x plus the seed's noise, so
    blending two inputs blends the outputs exactly -- only if both runs drew the same noise."""
    x_a = torch.randn(SHAPE, generator=seeded(1), dtype=torch.float64)
    x_b = torch.randn(SHAPE, generator=seeded(2), dtype=torch.float64)
    linear = lambda x, i: 0.3 * x  # noqa: E731
    for sampler in (AncestralSampler(schedule, clip_x0=False), DDIMSampler(schedule, 10, clip_x0=False, eta=0.7)):
        out = [sampler.sample(linear, x, start=60, generator=seeded(5)) for x in (x_a, x_b, 0.3 * x_a + 0.7 * x_b)]
        assert torch.allclose(out[2], 0.3 * out[0] + 0.7 * out[1], atol=1e-9)


def test_a_fixed_number_of_draws_per_run(schedule):
    """The generator advances by one draw of x's shape per stochastic step, whatever the values."""
    x = torch.randn(SHAPE, generator=seeded(0))
    cases = [(AncestralSampler(schedule), 30), (DDIMSampler(schedule, 10, eta=1.0), 9), (DDIMSampler(schedule, 10), 0)]
    for sampler, draws in cases:
        used = seeded(3)
        sampler.sample(toy_predictor, x, start=30, generator=used)
        reference = seeded(3)
        for _ in range(draws):
            torch.randn(SHAPE, generator=reference)
        assert torch.equal(used.get_state(), reference.get_state())


@pytest.mark.parametrize("sampler, draws", [
    (lambda s: AncestralSampler(s, clip_x0=False), 30),
    (lambda s: DDIMSampler(s, 10, clip_x0=False, eta=0.7), 9),
])
def test_the_last_noise_gain_scales_the_last_fresh_draw_alone(schedule, sampler, draws):
    """A linear predictor makes the result linear in the draws: the gain adds (gain - 1) x the last draw's part."""
    sampler = sampler(schedule)
    linear = lambda x, i: 0.3 * x  # noqa: E731
    x = torch.randn(SHAPE, generator=seeded(0), dtype=torch.float64)
    assert sampler.fresh_draws(sampler.timesteps(30)) == draws

    def stream(only: int | None = None):
        drawn, source = [], seeded(4)

        def noise(shape, *, device, dtype):
            drawn.append(torch.randn(tuple(shape), generator=source, dtype=dtype))
            return drawn[-1] if only in (None, len(drawn)) else torch.zeros_like(drawn[-1])
        return noise

    plain = sampler.sample(linear, x, start=30, generator=stream())
    gained = sampler.sample(linear, x, start=30, generator=stream(), last_noise_gain=2.5)
    last_alone = sampler.sample(linear, torch.zeros_like(x), start=30, generator=stream(only=draws))
    assert last_alone.abs().max() > 1e-3
    assert torch.allclose(gained - plain, 1.5 * last_alone, atol=1e-9)
    # The same with a torch.Generator, which the gain wraps.
    assert torch.allclose(sampler.sample(linear, x, start=30, generator=seeded(4), last_noise_gain=2.5), gained,
                          atol=1e-9)


def test_a_sampler_without_fresh_noise_ignores_the_last_noise_gain(schedule):
    x = torch.randn(SHAPE, generator=seeded(0))
    for sampler in (DDIMSampler(schedule, 10), DPMSolverPlusPlus2MSampler(schedule, 10)):
        assert sampler.fresh_draws(sampler.timesteps()) == 0
        assert torch.equal(sampler.sample(toy_predictor, x, last_noise_gain=3.0), sampler.sample(toy_predictor, x))
    with pytest.raises(ValueError, match="last_noise_gain"):
        DDIMSampler(schedule, 10, eta=1.0).sample(toy_predictor, x, last_noise_gain=-1.0)


def test_a_noise_function_can_stand_in_for_the_generator(schedule):
    """E.g. sr_desk.diffusion.noise.SeededNoise: called once per stochastic step with x's shape and dtype."""
    calls = []

    def noise(shape, *, device, dtype):
        calls.append((tuple(shape), device, dtype))
        return torch.zeros(tuple(shape), device=device, dtype=dtype)

    x = torch.randn(SHAPE, generator=seeded(0), dtype=torch.float64)
    quiet = AncestralSampler(schedule).sample(toy_predictor, x, start=20, generator=noise)
    assert calls == [(SHAPE, x.device, torch.float64)] * 20
    # Without noise, ancestral sampling is DDIM with sigma set to the posterior's, z = 0.
    assert torch.allclose(quiet, DDIMSampler(schedule, eta=1.0).sample(toy_predictor, x, start=20, generator=noise))


@pytest.mark.parametrize("case", ALL_SAMPLERS, ids=sampler_id)
def test_callback_once_per_step_with_a_preview(schedule, case):
    name, steps, options = case
    sampler = make_sampler(name, schedule, steps, **options)
    calls: list[tuple[int, int]] = []

    def callback(step, total, x0_hat):
        assert x0_hat.shape == SHAPE and float(x0_hat.abs().max()) <= 1.0
        calls.append((step, total))

    sampler.sample(toy_predictor, torch.randn(SHAPE, generator=seeded(0)), generator=seeded(1), callback=callback)
    total = len(sampler.timesteps())
    assert calls == [(k, total) for k in range(1, total + 1)]


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_an_exception_from_the_callback_cancels_the_run(schedule, name):
    class Cancelled(Exception):
        pass

    calls = []

    def predictor(x, i):
        calls.append(i)
        return toy_predictor(x, i)

    def callback(step, total, x0_hat):
        if step == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        make_sampler(name, schedule).sample(predictor, torch.randn(SHAPE), callback=callback)
    assert len(calls) == 3


# -- exactness ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [99, 49, 5, 0])
@pytest.mark.parametrize("case", ALL_SAMPLERS, ids=sampler_id)
def test_an_oracle_predictor_gives_back_x0(schedule, case, start):
    name, steps, options = case
    x0 = torch.rand(SHAPE, generator=seeded(11)) * 1.8 - 0.9
    x = schedule.q_sample(x0, start, torch.randn(SHAPE, generator=seeded(12)))
    sampler = make_sampler(name, schedule, steps, **options)
    result = sampler.sample(oracle_for(schedule, x0), x, start=start, generator=seeded(13))
    assert torch.allclose(result, x0, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("name", "steps"), [("ddim", 10), ("dpm++2m", 7)])
def test_deterministic_samplers_stay_on_the_oracle_trajectory(schedule, name, steps):
    """With x0 known, the exact ODE path is x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) eps for one fixed eps."""
    x0 = torch.rand(SHAPE, generator=seeded(21), dtype=torch.float64) * 2 - 1
    noise = torch.randn(SHAPE, generator=seeded(22), dtype=torch.float64)
    oracle = oracle_for(schedule, x0)

    def checking(x, i):
        assert torch.allclose(x, schedule.q_sample(x0, i, noise), atol=1e-9)
        return oracle(x, i)

    make_sampler(name, schedule, steps).sample(checking, schedule.q_sample(x0, 80, noise), start=80)


def test_ddim_with_eta_1_over_every_step_is_the_ancestral_sampler(schedule):
    x = torch.randn(SHAPE, generator=seeded(0))
    ancestral = AncestralSampler(schedule).sample(toy_predictor, x, generator=seeded(42))
    ddim = DDIMSampler(schedule, eta=1.0).sample(toy_predictor, x, generator=seeded(42))
    assert torch.allclose(ddim, ancestral, atol=1e-5, rtol=0)
    # The same from a partial start, and with the clamp off.
    ancestral = AncestralSampler(schedule, clip_x0=False).sample(toy_predictor, x, start=49, generator=seeded(3))
    ddim = DDIMSampler(schedule, 100, clip_x0=False, eta=1.0).sample(toy_predictor, x, start=49, generator=seeded(3))
    assert torch.allclose(ddim, ancestral, atol=1e-5, rtol=0)


def test_ddim_with_eta_1_matches_the_ancestral_distribution(schedule):
    """Independent seeds: every element of the toy batch is an independent sample (elementwise
    predictor), so 8192 of them per sampler give the output distribution's moments to ~1-2 %."""
    x = torch.randn(2048, 1, 2, 2, generator=seeded(100))
    ancestral = AncestralSampler(schedule).sample(toy_predictor, x, generator=seeded(101)).flatten()
    other_x = torch.randn(x.shape, generator=seeded(200))
    ddim = DDIMSampler(schedule, eta=1.0).sample(toy_predictor, other_x, generator=seeded(201)).flatten()
    assert ancestral.std() > 0.1  # a genuinely random output, not a constant
    se = ancestral.std() / math.sqrt(ancestral.numel())
    assert abs(ddim.mean() - ancestral.mean()) < 5 * math.sqrt(2) * se
    assert abs(ddim.std() / ancestral.std() - 1) < 0.05
    assert ks_statistic(ddim, ancestral) < 0.035  # two-sample KS critical value at alpha = 1e-4
    # The test can tell samplers apart: deterministic DDIM gives a different distribution.
    deterministic = DDIMSampler(schedule, eta=0.0).sample(toy_predictor, x).flatten()
    assert ks_statistic(deterministic, ancestral) > 0.1


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """The two-sample Kolmogorov-Smirnov distance: the largest gap between the empirical CDFs."""
    a, b = a.sort().values, b.sort().values
    points = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, points, right=True) / a.numel()
    cdf_b = torch.searchsorted(b, points, right=True) / b.numel()
    return float((cdf_a - cdf_b).abs().max())


# -- DPM-Solver++(2M) is a second-order ODE solver -----------------------------------------------------

DATA_MEAN, DATA_STD = 0.2, 0.5


def gaussian_data_predictor(schedule: NoiseSchedule):
    """The exact eps predictor when the data are N(DATA_MEAN, DATA_STD^2) per pixel."""
    abar = schedule.alphas_cumprod.tolist()

    def predictor(x, i):
        a, s = math.sqrt(abar[i]), math.sqrt(1 - abar[i])
        x0 = DATA_MEAN + a * DATA_STD**2 / (a * a * DATA_STD**2 + s * s) * (x - a * DATA_MEAN)
        return (x - a * x0) / s

    return predictor


def exact_ode_result(schedule: NoiseSchedule, x: torch.Tensor, start: int) -> torch.Tensor:
    """Where the probability-flow ODE takes x: for Gaussian data it keeps the standardised value
    z = (x_i - a_i mu) / sqrt(a_i^2 tau^2 + s_i^2); every sampler then ends on the x0 prediction at 0."""
    abar = schedule.alphas_cumprod.tolist()
    a, s = math.sqrt(abar[start]), math.sqrt(1 - abar[start])
    z = (x - a * DATA_MEAN) / math.sqrt(a * a * DATA_STD**2 + s * s)
    a0, s0 = math.sqrt(abar[0]), math.sqrt(1 - abar[0])
    return DATA_MEAN + a0 * DATA_STD**2 / math.sqrt(a0 * a0 * DATA_STD**2 + s0 * s0) * z


@pytest.mark.parametrize("start", [99, 49])
def test_dpm_solver_converges_at_second_order_and_ddim_at_first(schedule, start):
    x = torch.randn(SHAPE, generator=seeded(0), dtype=torch.float64)
    predictor, exact = gaussian_data_predictor(schedule), exact_ode_result(schedule, x, start)

    def error(name: str, steps: int) -> float:
        sampler = make_sampler(name, schedule, steps, clip_x0=False)
        return float((sampler.sample(predictor, x, start=start) - exact).abs().max())

    ddim_ratio = error("ddim", 20) / error("ddim", 40)
    dpm_ratio = error("dpm++2m", 20) / error("dpm++2m", 40)
    assert 1.5 < ddim_ratio < 2.6  # halving the step halves the error
    assert dpm_ratio > 2.8  # ... and quarters it
    assert error("dpm++2m", 40) < 0.5 * error("ddim", 40)


# -- x0 corrections (LR consistency) -----------------------------------------------------------------


@pytest.mark.parametrize("case", ALL_SAMPLERS, ids=sampler_id)
def test_a_correction_that_knows_x0_lands_every_sampler_on_it(schedule, case):
    """A correction replacing every x0 prediction by the truth turns any predictor into the oracle."""
    name, steps, options = case
    x0 = torch.rand(SHAPE, generator=seeded(31)) * 1.8 - 0.9
    seen = []
    result = make_sampler(name, schedule, steps, **options).sample(
        toy_predictor,
        torch.randn(SHAPE, generator=seeded(32)),
        generator=seeded(33),
        correct_x0=lambda x0_hat: x0,
        callback=lambda step, total, x0_hat: seen.append(x0_hat),
    )
    assert torch.allclose(result, x0, atol=1e-4, rtol=0)
    assert all(torch.equal(shown, x0) for shown in seen)  # previews show the corrected prediction


def test_the_correction_sees_the_clamped_prediction(schedule):
    received = []
    make_sampler("ddim", schedule, 3).sample(
        lambda x, i: -50 * x, torch.randn(SHAPE, generator=seeded(34)), correct_x0=lambda x0: received.append(x0) or x0
    )
    assert len(received) == 3 and all(float(x0.abs().max()) <= 1.0 for x0 in received)
