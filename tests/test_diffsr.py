"""Diff-SR: the injection table, Algorithm R, the prior's file, a diffusers folder, the method and its trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.schedule import linear_schedule
from sr_desk.diffusion.weights_file import CheckpointError
from sr_desk_plugins.diffsr.calibrate import shrink, sweep, table_from
from sr_desk_plugins.diffsr.checkpoints import load_model, save_safetensors
from sr_desk_plugins.diffsr.config import DiffSRConfig
from sr_desk_plugins.diffsr.injection import InjectionTable, fallback_level, injection_step
from sr_desk_plugins.diffsr.network import DiffSRUNet
from sr_desk_plugins.diffsr.process import resample, restore
from sr_desk_plugins.diffsr.train import PRESETS, STEP_MIX, DiffSRPriorTask
from tests.conftest import run_plugin
from tests.method_helpers import check_exact_sizes_and_shrinks, random_headed, upscale_with_previews

TINY = PRESETS["tiny"]
SCHEDULE = linear_schedule(1000)


def random_prior(config: DiffSRConfig = TINY, seed: int = 0) -> DiffSRUNet:
    """A prior whose head is not zero, so that it predicts some noise (a trained one does)."""
    return random_headed(DiffSRUNet, config, seed)


# -- the injection level ----------------------------------------------------------------------------


def test_the_level_is_interpolated_between_calibrated_scales_and_held_beyond():
    table = InjectionTable((2.0, 4.0, 8.0), (0.1, 0.3, 0.5), (0.4, 0.2, 0.1))
    assert table.level(2.0) == pytest.approx(0.1) and table.level(4.0) == pytest.approx(0.3)
    assert table.level(3.0) == pytest.approx(0.2)
    assert table.level(2.7) == pytest.approx(0.1 + 0.2 * 0.7 / 2)
    assert table.level(6.0) == pytest.approx(0.4)
    assert table.level(1.2) == pytest.approx(0.1) and table.level(16.0) == pytest.approx(0.5)
    assert table.recoverable(8.0)
    assert not InjectionTable((2.0, 8.0), (0.1, 0.0)).recoverable(8.0)
    assert InjectionTable.from_json(table.to_json()) == table


@pytest.mark.parametrize("bad", [((4.0, 2.0), (0.1, 0.2)), ((2.0,), (0.9,)), ((2.0, 4.0), (0.1,)),
                                 ((0.5,), (0.1,)), ((2.0,), (float("nan"),))])
def test_a_bad_table_is_refused(bad):
    with pytest.raises(ValueError):
        InjectionTable(*bad)


def test_the_paper_s_points_before_calibration_and_the_step_of_a_level():
    assert fallback_level(2) == pytest.approx(0.2) and fallback_level(4) == pytest.approx(0.4)
    assert fallback_level(0.5) == 0.1 and fallback_level(8) == 0.6
    assert injection_step(0.0, 1000) == -1
    assert injection_step(0.4, 1000) == 399  # t = round(NL T) = 400, index 399
    with pytest.raises(ValueError):
        injection_step(1.5, 1000)


# -- Algorithm R ---------------------------------------------------------------------------------------


def test_zero_injection_returns_the_resampled_input():
    lr = torch.rand(1, 3, 8, 10)
    out = restore(random_prior(), lr, (21, 27), SCHEDULE, level=0.0, consistency="off")
    assert torch.allclose(out, resample(lr, (21, 27)), atol=1e-6)


def test_restore_is_deterministic_by_seed_pads_and_previews_every_call():
    lr = torch.rand(1, 3, 7, 9)
    calls = []

    def run(seed):
        return restore(random_prior(), lr, (19, 26), SCHEDULE, level=0.3, steps=4, multiple=TINY.size_multiple,
                       generator=torch.Generator().manual_seed(seed), callback=lambda k, n, x0: calls.append(x0.shape))

    a = run(1)
    assert a.shape == (1, 3, 19, 26) and calls == [(1, 3, 19, 26)] * 4
    assert torch.equal(a, run(1)) and not torch.equal(a, run(2))


def test_consistency_at_every_step_keeps_the_result_on_the_input():
    lr = torch.rand(1, 3, 12, 12) * 0.6 + 0.2
    errors = {}
    for mode in ("off", "end", "every-step"):
        out = restore(random_prior(), lr, (48, 48), SCHEDULE, level=0.4, steps=5, consistency=mode,
                      generator=torch.Generator().manual_seed(0))
        errors[mode] = float((imresize(out, size=(12, 12)) - lr).abs().mean())
    assert errors["every-step"] < 0.5 * errors["off"] and errors["end"] < 0.5 * errors["off"]


# -- the prior's file ------------------------------------------------------------------------------------


def test_safetensors_round_trip_with_the_table_and_foreign_files_are_refused(tmp_path):
    network = random_prior()
    path = tmp_path / "prior.safetensors"
    table = InjectionTable((2.0, 4.0), (0.15, 0.3), (0.3, 0.2))
    save_safetensors(network, TINY, path, table=table)
    loaded, config, read = load_model(path)
    assert config == TINY and read == table
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded(x, 100), network(x, 100))
    save_safetensors(network, TINY, path)
    assert load_model(path)[2] is None
    torch.save(network.state_dict(), tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="not a Diff-SR safetensors"):
        load_model(tmp_path / "state.pt")


@pytest.mark.parametrize(("field", "value"), [("width", 10**9), ("beta_schedule", "sigmoid"), ("beta_end", 2.0),
                                              ("attention", 1), ("mults", [])])
def test_config_values_in_a_header_are_checked(field, value):
    data = json.loads(TINY.to_json()) | {field: value}
    with pytest.raises(ValueError):
        DiffSRConfig.from_json(json.dumps(data))


# -- a diffusers folder ---------------------------------------------------------------------------------------


def write_diffusers_folder(folder, prediction_type="epsilon"):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                                 block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    unet.save_pretrained(folder, safe_serialization=True)
    scheduler = diffusers.DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)
    scheduler.save_pretrained(folder)
    return folder


def test_the_schedule_follows_diffusers_for_each_beta_schedule():
    diffusers = pytest.importorskip("diffusers")
    from sr_desk.diffusion.schedule import from_scheduler_config

    for kind, start, end in (("linear", 1e-4, 0.02), ("scaled_linear", 0.00085, 0.012), ("squaredcos_cap_v2", 1e-4, 0.02)):
        config = {"num_train_timesteps": 1000, "beta_start": start, "beta_end": end, "beta_schedule": kind}
        expected = diffusers.DDPMScheduler(**config).alphas_cumprod.double()
        assert torch.allclose(from_scheduler_config(config).alphas_cumprod, expected, atol=1e-6)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_every_prediction_type_becomes_the_noise(tmp_path, prediction_type):
    from sr_desk_plugins.diffsr.diffusers_prior import load_diffusers_prior

    prior = load_diffusers_prior(write_diffusers_folder(tmp_path / "m", prediction_type), "cpu")
    assert prior.prediction_type == prediction_type and prior.size_multiple == 2
    x0, eps = torch.rand(1, 3, 16, 16) * 2 - 1, torch.randn(1, 3, 16, 16)
    x_t = prior.schedule.q_sample(x0, 300, eps)
    raw = prior.model(x_t, 300).sample
    got = prior.predictor()(x_t, 300)
    if prediction_type == "epsilon":
        assert torch.equal(got, raw)
    else:  # back to the model's own output through the closed forms
        x0_hat = prior.schedule.predict_x0(x_t, 300, got)
        a = float(prior.schedule.alphas_cumprod[300]) ** 0.5
        s = (1 - a * a) ** 0.5
        back = x0_hat if prediction_type == "sample" else a * got - s * x0_hat
        assert torch.allclose(back, raw, atol=1e-4)


def test_a_diffusers_folder_written_by_the_test_upscales_in_the_app(tmp_path, host, rng):
    folder = write_diffusers_folder(tmp_path / "my-prior")
    image = ImageData(rgb=rng.random((10, 12, 3), dtype=np.float32))
    result = run(host, image, folder, scale=2.7, params={"steps": 3})
    assert result.size == (32, 27) and np.isfinite(result.rgb).all()


def test_pickled_weights_and_non_rgb_models_are_refused(tmp_path, host, rng):
    diffusers = pytest.importorskip("diffusers")
    image = ImageData(rgb=rng.random((8, 8, 3), dtype=np.float32))
    folder = write_diffusers_folder(tmp_path / "pickled")
    for f in folder.glob("*.safetensors"):
        f.unlink()
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(SrDeskError, match="never loads pickled"):
        run(host, image, folder, scale=2)
    gray = tmp_path / "gray"
    diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                          block_out_channels=(8, 16), norm_num_groups=4,
                          down_block_types=("DownBlock2D", "DownBlock2D"),
                          up_block_types=("UpBlock2D", "UpBlock2D")).save_pretrained(gray)
    with pytest.raises(SrDeskError, match="RGB pixel-space"):
        run(host, image, gray, scale=2)
    with pytest.raises(SrDeskError, match="without a diffusers config"):
        run(host, image, tmp_path, scale=2)


# -- the method in the app --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "diffsr-tiny.safetensors"
    save_safetensors(random_prior(), TINY, path, table=InjectionTable((2.0, 4.0, 8.0), (0.2, 0.3, 0.0),
                                                                      (0.3, 0.1, -0.2)))
    return path


def run(host, image, weights_file, events=None, **fields):
    return run_plugin(host, "diffsr", image, weights_file, events, **fields)


def test_diffsr_is_listed_with_its_declared_parameters(host):
    method = host.method("diffsr")
    assert [p.name for p in method.param_set][0] == "detail"
    assert {p.name for p in method.param_set} == {"detail", "steps", "auto_level", "noise_level", "sampler", "consistency"}
    caps = method.capabilities
    assert caps.arbitrary_scale and caps.previews and caps.seeds and not caps.tiles


def test_upscale_is_deterministic_by_seed_and_previews_every_call(host, weights, rng):
    image, a = upscale_with_previews(host, "diffsr", weights, rng, 4, seed=5, params={"steps": 4})
    assert np.array_equal(a.rgb, run(host, image, weights, scale=4, seed=5, params={"steps": 4}).rgb)
    assert not np.array_equal(a.rgb, run(host, image, weights, scale=4, seed=6, params={"steps": 4}).rgb)


def test_exact_sizes_non_integer_scales_and_shrinks(host, weights, rng):
    check_exact_sizes_and_shrinks(host, "diffsr", weights, rng, 2.7, (43, 24), params={"steps": 2})


def test_the_manual_level_overrides_the_table_and_zero_is_the_enlarged_input(host, weights, rng):
    image = ImageData(rgb=rng.random((8, 8, 3), dtype=np.float32))
    plain = run(host, image, weights, scale=2, params={"auto_level": False, "noise_level": 0.0, "consistency": "off"})
    enlarged = resample(torch.from_numpy(image.rgb).permute(2, 0, 1)[None], (16, 16))[0].permute(1, 2, 0)
    assert np.allclose(plain.rgb, enlarged.clamp(0, 1).numpy(), atol=1e-5)
    auto = run(host, image, weights, scale=2, seed=1, params={"detail": 0.0})
    manual = run(host, image, weights, scale=2, seed=1, params={"auto_level": False, "noise_level": 0.2})
    assert np.array_equal(auto.rgb, manual.rgb)  # the table says 0.2 at x2: Detail 0 injects it


def test_detail_raises_the_injected_level_from_the_calibrated_one_to_the_top():
    from sr_desk_plugins.diffsr.methods import TOP_LEVEL, level_for_detail

    assert level_for_detail(0.0, 0.2) == 0.2 and level_for_detail(1.0, 0.2) == TOP_LEVEL
    assert level_for_detail(0.5, 0.0) == TOP_LEVEL / 2
    assert level_for_detail(1.0, 0.6) == 0.6  # a calibrated level above the top is kept at every Detail


def test_a_scale_beyond_the_recoverable_field_says_so(host, weights, rng):
    image = ImageData(rgb=rng.random((4, 4, 3), dtype=np.float32))
    events = []
    run(host, image, weights, events, scale=8, params={"steps": 2, "detail": 0.0})
    assert any("no noise level beat the enlarged input" in (e.message or "") for e in events)


def test_a_large_canvas_runs_in_tiles_without_seams():
    from sr_desk.diffusion.tiled import tile_starts, tiled_predictor

    from sr_desk.diffusion.tiled import balanced_tile

    assert tile_starts(1000, 256, 32, 8)[-1] == 744 and tile_starts(200, 256, 32) == [0]
    # three tiles of 384 cover 1024 with the same overlap as three of 512 would, at 56% of the cost
    assert balanced_tile(1024, 512, 64, 8) == 384 and tile_starts(1024, 384, 64, 8) == [0, 320, 640]
    assert balanced_tile(500, 512, 64) == 500 and balanced_tile(2160, 512, 64, 8) == 488
    pointwise = lambda x, i: torch.tanh(x) * i  # noqa: E731 - a network without a receptive field
    x = torch.randn(1, 3, 200, 136)
    assert torch.allclose(tiled_predictor(pointwise, 64, 16, 8)(x, 3), pointwise(x, 3), atol=1e-5)
    blur = torch.nn.Conv2d(3, 3, 3, padding=1, bias=False)  # a local network: tiles may only differ at their edges
    torch.nn.init.constant_(blur.weight, 1 / 27)
    local = lambda x, i: blur(x).detach()  # noqa: E731
    tiled = tiled_predictor(local, 64, 16, 8)(x, 0)
    assert float((tiled - local(x, 0)).abs().mean()) < 2e-3
    assert torch.allclose(tiled[..., :32, :24], local(x, 0)[..., :32, :24], atol=1e-5)  # covered by one tile only


# -- calibration and training ----------------------------------------------------------------------------------


def test_the_prf_rule_stays_as_faithful_as_the_input_and_balances_drift_against_blur():
    from sr_desk_plugins.diffsr.calibrate import Sweep, prf_index

    # Level 0 is the most faithful and the blurriest; 0.3 falls below bicubic (outside the field).
    psnr, detail_row = [31.0, 30.8, 30.2, 29.0], [0.60, 0.80, 0.95, 1.20]
    assert prf_index(psnr, detail_row, bicubic=30.0) == 1  # drift 0.2 dB for half the blur gone
    assert prf_index(psnr, [0.60, 0.62, 0.64, 1.0], bicubic=30.0) == 0  # little detail for the drift
    assert prf_index([29.0, 28.0], [0.5, 0.9], bicubic=30.0) == 0  # an empty field: no injection
    result = Sweep((0.0, 0.1, 0.2, 0.3), psnr={2.0: psnr, 8.0: [25.0, 24.0, 23.0, 22.0]},
                   detail={2.0: detail_row, 8.0: [0.4, 0.6, 0.8, 0.9]}, bicubic={2.0: 30.0, 8.0: 24.5})
    table = table_from(result)
    assert table.scales == (2.0, 8.0) and table.levels == (0.1, 0.0) and table.gains == (0.8, 0.5)
    assert table.recoverable(2.0) and not table.recoverable(8.0)


def test_a_calibration_sweep_measures_every_level():
    hr = torch.rand(2, 3, 24, 24)
    assert shrink(hr, 2.5).shape[-2:] == (10, 10)
    results = sweep(lambda x, i: random_prior()(x, i), SCHEDULE, hr, TINY.size_multiple, scales=(2.0,),
                    levels=(0.0, 0.2), steps=2)
    assert len(results.psnr[2.0]) == 2 and all(np.isfinite(results.psnr[2.0] + results.detail[2.0]))
    assert results.psnr[2.0][0] > results.bicubic[2.0]  # level 0 is the back-projected input
    assert json.loads(json.dumps(results.to_json()))["levels"] == [0.0, 0.2]


def test_steps_are_drawn_reproducibly_with_most_weight_where_diffsr_injects():
    task = DiffSRPriorTask(TINY, DiffSRUNet(TINY))
    draw = lambda: task.sample_steps(20000, torch.Generator().manual_seed(3))  # noqa: E731
    steps = draw()
    assert torch.equal(steps, draw()) and int(steps.min()) >= 0 and int(steps.max()) < 1000
    expected_below = lambda level: sum(share * min(1.0, level / top) for share, top in STEP_MIX)  # noqa: E731
    for level in (0.1, 0.6):
        assert float((steps < level * 1000).float().mean()) == pytest.approx(expected_below(level), abs=0.02)


def test_a_training_step_runs_and_the_loss_is_mse_on_the_noise():
    task = DiffSRPriorTask(TINY, DiffSRUNet(TINY))
    hr = torch.rand(4, 3, 24, 24)
    loss = task.loss(task.module, hr[..., ::4, ::4], hr, torch.Generator().manual_seed(0))
    assert float(loss.detach()) == pytest.approx(1.0, abs=0.1)  # an untrained prior predicts zero noise
    loss.backward()
    assert task.module.head.weight.grad.abs().sum() > 0
    assert task.predict(task.module.eval(), hr[..., ::4, ::4]).shape == hr.shape


def test_the_compact_preset_is_the_model_card_s_network():
    network = DiffSRUNet(PRESETS["compact"])
    assert sum(p.numel() for p in network.parameters()) == 2_662_092
    assert PRESETS["compact"].size_multiple == 8
