"""Issue 31: one "Detail" control, declared the same way by every diffusion upscale method.

The curve and the tempered noise against their closed forms; the declaration
as ``sr-desk methods --json`` shows it; and, with the shipped weights, each
method's result on a textured picture gaining detail as Detail rises, and
Detail 0 giving one faithful picture whatever the seed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sr_desk.api import DETAIL, DeclarationError, ParamError, detail_of, detail_param
from sr_desk.core.imageio import ImageData
from sr_desk.core.metrics import detail_ratio
from sr_desk.diffusion.detail import DetailCurve, TemperedNoise
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.training.data import degrade
from tests.conftest import run_method

#: The built-in methods that declare Detail; DTLS (deterministic, no noise at all) does not, for the reason in
#: its model card.
DETAILED = ("srdiff", "srdiff-interpolate", "dossr", "diffsr", "lddpm")
UPSCALERS = ("srdiff", "dossr", "diffsr", "lddpm")


def test_a_curve_is_straight_lines_through_its_points_clamped_to_its_ends():
    curve = DetailCurve(((0.0, 0.0), (0.5, 1.0), (1.0, 1.2)))
    assert [curve.at(d) for d in (0.0, 0.25, 0.5, 0.75, 1.0)] == pytest.approx([0.0, 0.5, 1.0, 1.1, 1.2])
    assert curve.at(-3) == 0.0 and curve.at(7) == pytest.approx(1.2)


@pytest.mark.parametrize("points", [
    ((0.0, 0.0),),  # one point
    ((0.1, 0.0), (1.0, 1.0)),  # does not start at 0
    ((0.0, 0.0), (0.9, 1.0)),  # does not end at 1
    ((0.0, 0.0), (0.5, 1.0), (0.5, 1.5), (1.0, 2.0)),  # detail does not rise
    ((0.0, 1.0), (1.0, 0.5)),  # the setting falls: more detail, less of its means
])
def test_a_curve_that_is_not_monotonic_from_0_to_1_is_refused(points):
    with pytest.raises(ValueError):
        DetailCurve(points)


def test_tempered_noise_scales_the_same_stream():
    plain, tempered = SeededNoise(5), TemperedNoise(SeededNoise(5), 0.25)
    for shape in ((2, 3), (4,)):
        a = plain(shape, device=torch.device("cpu"), dtype=torch.float32)
        b = tempered(shape, device=torch.device("cpu"), dtype=torch.float32)
        assert torch.equal(b, a * 0.25)
    zero = TemperedNoise(SeededNoise(9), 0.0)((3,), device=torch.device("cpu"), dtype=torch.float32)
    assert not zero.any()
    with pytest.raises(ValueError):
        TemperedNoise(SeededNoise(0), -1.0)


def test_srdiff_tempers_every_draw_up_to_the_trained_sampler_then_only_its_last_draw():
    """Past temperature 1 every draw's temperature breaks these weights' structure; the last draw's gain does not."""
    from sr_desk_plugins.srdiff.methods import TRAINED_DETAIL, last_noise_gain, seeded_noise

    def temperature(detail: float) -> float:
        return seeded_noise(0, {DETAIL: detail}).temperature

    below = [d * TRAINED_DETAIL for d in (0.0, 0.5, 1.0)]
    above = [TRAINED_DETAIL + d * (1 - TRAINED_DETAIL) for d in (0.0, 0.5, 1.0)]
    assert [temperature(d) for d in below] == sorted(temperature(d) for d in below)
    assert temperature(0.0) == 0.0 and all(temperature(d) == 1.0 for d in above)
    assert all(last_noise_gain({DETAIL: d}) == 1.0 for d in below)
    gains = [last_noise_gain({DETAIL: d}) for d in above]
    assert gains[0] == 1.0 < gains[1] < gains[2]


def test_lddpm_tempers_its_draws_up_to_the_trained_sampler_and_raises_its_residual_gain_throughout():
    from sr_desk_plugins.lddpm.methods import residual_gain, seeded_noise

    details = (0.0, 0.125, 0.25, 0.5, 1.0)
    temperatures = [seeded_noise(0, {DETAIL: d}).temperature for d in details]
    gains = [residual_gain({DETAIL: d}) for d in details]
    assert temperatures[0] == 0.0 < temperatures[1] < temperatures[2] == temperatures[3] == temperatures[4] == 1.0
    assert gains[0] == 1.0 and gains == sorted(set(gains))


def test_the_declaration_is_a_0_to_1_slider_and_requests_without_it_get_the_default():
    param = detail_param(0.3)
    assert (param.name, param.label, param.minimum, param.maximum, param.default) == (DETAIL, "Detail", 0, 1, 0.3)
    assert not param.advanced
    assert param.parse("0.7") == 0.7
    with pytest.raises(ParamError):
        param.parse("1.5")
    with pytest.raises(DeclarationError):
        detail_param(2.0)
    assert detail_of({}, 0.3) == 0.3 and detail_of({DETAIL: 1}, 0.3) == 1.0


def test_every_diffusion_upscaler_shows_detail_first_in_methods_json(capsys):
    from sr_desk.cli import main

    assert main(["methods", "--json"]) == 0
    methods = {m["id"]: m for m in json.loads(capsys.readouterr().out)}
    for method_id in DETAILED:
        first = methods[method_id]["params"][0]
        assert (first["name"], first["kind"], first["minimum"], first["maximum"]) == ("detail", "float", 0, 1)
    assert all(p["name"] != DETAIL for m in ("dtls", "bicubic") for p in methods[m]["params"])


@pytest.fixture(scope="module")
def textured() -> tuple[np.ndarray, ImageData]:
    """A 96 px ground truth of fine grass-like strokes over soft shading, and its 24 px LR (bicubic 4x down)."""
    rng = np.random.default_rng(31)
    y, x = np.mgrid[0:96, 0:96] / 96.0
    shading = np.stack([0.35 + 0.3 * x, 0.45 + 0.2 * y, 0.25 + 0.1 * x * y], -1)
    strokes = np.sin(2 * np.pi * (x * 19 + rng.random() + 2.5 * np.sin(2 * np.pi * y * 3)))
    grain = rng.normal(0, 1, (96, 96))
    hr = np.clip(shading + 0.12 * strokes[..., None] + 0.06 * grain[..., None], 0, 1).astype(np.float32)
    lr = degrade(torch.from_numpy(hr).permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0).numpy()
    return hr, ImageData(rgb=np.ascontiguousarray(lr))


def upscaled(host, shipped, image: ImageData, method_id: str, detail: float, seed: int = 0) -> np.ndarray:
    method = host.method(method_id)
    return run_method(image, method, weights_store=shipped, precision="float32", scale=4, seed=seed,
                      params={DETAIL: detail}).rgb


@pytest.mark.parametrize("method_id", UPSCALERS)
def test_more_detail_gives_a_result_with_more_detail(host, shipped, textured, method_id):
    hr, lr = textured
    ratios = [detail_ratio(upscaled(host, shipped, lr, method_id, d), hr, 4) for d in (0.0, 0.5, 1.0)]
    assert ratios[0] < ratios[1] < ratios[2], f"{method_id}: detail ratios {ratios}"


@pytest.mark.parametrize("method_id", UPSCALERS)
def test_detail_0_is_one_deterministic_picture_whatever_the_seed(host, shipped, textured, method_id):
    _, lr = textured
    first = upscaled(host, shipped, lr, method_id, 0.0, seed=0)
    assert np.array_equal(first, upscaled(host, shipped, lr, method_id, 0.0, seed=0))
    assert np.array_equal(first, upscaled(host, shipped, lr, method_id, 0.0, seed=7))
    assert not np.array_equal(upscaled(host, shipped, lr, method_id, 1.0, seed=0),
                              upscaled(host, shipped, lr, method_id, 1.0, seed=7))
