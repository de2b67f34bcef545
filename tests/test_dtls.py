"""DTLS: the size schedule, the samplers against hand-computed cases, checkpoints, the method and its trainer."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from PIL import Image

from sr_desk.core.imageio import ImageData
from sr_desk.diffusion.resolution import (
    Degradation,
    chain_sample,
    level_size,
    momentum_sample,
    start_level,
    two_call_sample,
)
from sr_desk.diffusion.weights_file import CheckpointError
from sr_desk_plugins.dtls.checkpoints import infer_official_config, load_model, save_safetensors
from sr_desk_plugins.dtls.config import OFFICIAL_16_128, OFFICIAL_32_512, DTLSConfig
from sr_desk_plugins.dtls.network import DTLSUNet
from sr_desk_plugins.dtls.train import PRESETS, DTLSTask
from tests.conftest import run_plugin
from tests.method_helpers import (
    SHARED_APP_CHECKS,
    check_exact_sizes_and_shrinks,
    upscale_with_previews,
)

TINY = PRESETS["tiny"]


# -- the size schedule ------------------------------------------------------------------


def test_levels_reproduce_both_official_schedules():
    # 16 -> 128 with stride 4 and 32 -> 512 with stride 16 (spec 3.1): HR - t * stride.
    assert [level_size((128, 128), t, 32)[0] for t in range(29)] == [128 - 4 * t for t in range(29)]
    assert [level_size((512, 512), t, 32)[0] for t in range(31)] == [512 - 16 * t for t in range(31)]
    assert (start_level(8, 32), start_level(16, 32), start_level(4, 32)) == (28, 30, 24)
    # Other inputs for the 512 model (spec 3.1): 64 -> 512 starts at 28, 128 -> 512 at 24.
    assert start_level(512 / 64, 32) == 28 and start_level(512 / 128, 32) == 24


@pytest.mark.parametrize(
    ("size", "t", "expected"),
    [((96, 160), 24, (24, 40)), ((1080, 1920), 24, (270, 480)), ((100, 37), 16, (50, 18)), ((5, 3), 30, (1, 1))],
)
def test_levels_of_any_size_and_aspect(size, t, expected):
    assert level_size(size, t, 32) == expected


def test_levels_outside_the_process_are_refused():
    with pytest.raises(ValueError):
        level_size((64, 64), 33, 32)
    with pytest.raises(ValueError):
        start_level(1.0, 32)


def test_degradation_is_linear_keeps_constants_and_level_zero_is_identity():
    d = Degradation(32, "bicubic-aa")
    a, b = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)
    assert torch.allclose(d(2 * a - 3 * b, 24), 2 * d(a, 24) - 3 * d(b, 24), atol=1e-5)
    assert torch.equal(d(a, 0), a)
    assert torch.allclose(d(torch.full((1, 3, 40, 56), 0.3), 20), torch.full((1, 3, 40, 56), 0.3), atol=1e-6)
    levels = torch.tensor([0, 24])
    batch = d.batch(a, levels)
    assert torch.equal(batch[0], a[0]) and torch.allclose(batch[1], d(a[1:], 24)[0])


# -- the samplers -------------------------------------------------------------------------


def scripted(inputs: list[float]):
    """A predictor on constant images (D keeps them constant): R = x / 2 + t, recording each input value."""

    def predict(x: torch.Tensor, t: int) -> torch.Tensor:
        inputs.append(round(float(x.mean()), 6))
        return x / 2 + t

    return predict


def test_momentum_accumulation_against_a_hand_computed_case():
    # Start 4 at level 4: R4 = 4/2 + 4 = 6. The official loop then feeds D(R_t+1, t) + D(M, t), with
    # M = R4 - R_t+1 (spec 5.2), so every later input is R4 = 6: R3 = 6, R2 = 5, R1 = 4.
    # M is zero for the first two calls (R4 - R4, then R4 - R3 = 0 here by construction).
    d = Degradation(32)
    start = torch.full((1, 3, 16, 16), 4.0)
    seen: list[float] = []
    out = momentum_sample(scripted(seen), start, 4, d)
    assert seen == [4.0, 6.0, 6.0, 6.0]
    assert torch.allclose(out, torch.full_like(out, 4.0))
    chain: list[float] = []  # without momentum: 4 -> R4 = 6 -> R3 = 6 -> R2 = 5 -> R1 = 3.5
    out = chain_sample(scripted(chain), start, 4, d)
    assert chain == [4.0, 6.0, 6.0, 5.0] and torch.allclose(out, torch.full_like(out, 3.5))


def test_the_momentum_term_is_the_sum_of_differences_of_consecutive_predictions():
    # R = x + t^2 makes consecutive predictions differ: R5 = 5 + 25 = 30, R4 = 30 + 16 = 46.
    # Then M = R5 - R4 = -16 and the input at level 3 is D(R4) + D(M) = 30 again.
    d = Degradation(32)
    seen: list[float] = []

    def predict(x: torch.Tensor, t: int) -> torch.Tensor:
        seen.append(float(x.mean()))
        return x + t * t

    momentum_sample(predict, torch.full((1, 3, 8, 8), 5.0), 5, d)
    assert seen == pytest.approx([5.0, 30.0, 30.0, 30.0, 30.0])


@pytest.mark.parametrize("downscale", ["bilinear", "bicubic-aa"])
def test_the_two_call_form_equals_the_official_loop_on_a_random_unet(downscale):
    torch.manual_seed(0)
    config = DTLSConfig(dim=8, dim_mults=(1, 2, 4), attn_heads=1, attn_dim_head=8, residual=True, downscale=downscale)
    unet = DTLSUNet(config).eval()
    d = Degradation(config.levels, config.downscale)
    start = d(torch.rand(1, 3, 32, 48), 24)
    with torch.no_grad():
        loop = momentum_sample(unet, start, 24, d)
        fast = two_call_sample(unet, start, 24, d)
        chain = chain_sample(unet, start, 24, d)
    assert (loop - fast).abs().max() < 1e-5
    assert (chain - fast).abs().max() > 1e-3  # the plain chain is a different sampler


def test_previews_come_after_every_call():
    d = Degradation(32)
    calls = []
    two_call_sample(lambda x, t: x, torch.zeros(1, 3, 8, 8), 24, d, callback=lambda s, n, p: calls.append((s, n)))
    assert calls == [(1, 2), (2, 2)]
    calls.clear()
    momentum_sample(lambda x, t: x, torch.zeros(1, 3, 8, 8), 5, d, callback=lambda s, n, p: calls.append((s, n)))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


# -- the network and checkpoints ---------------------------------------------------------------


def test_the_official_configurations_have_the_released_parameter_counts():
    with torch.device("meta"):
        assert sum(p.numel() for p in DTLSUNet(OFFICIAL_16_128).parameters()) == 56_615_708
        assert sum(p.numel() for p in DTLSUNet(OFFICIAL_32_512).parameters()) == 73_260_508


def test_a_residual_unet_with_a_zero_head_is_the_identity():
    unet = DTLSUNet(TINY)
    torch.nn.init.zeros_(unet.final_conv[1].weight)
    torch.nn.init.zeros_(unet.final_conv[1].bias)
    x = torch.rand(2, 3, 16, 24)
    assert torch.equal(unet(x, torch.tensor([3, 7])), x)


def official_checkpoint(path, config: DTLSConfig, seed: int = 0):
    """An official-layout file: torch zip of ``{step, model, ema}``, keys prefixed ``denoise_fn.``."""
    torch.manual_seed(seed)
    model, ema = DTLSUNet(config), DTLSUNet(config)
    prefixed = lambda m: {f"denoise_fn.{k}": v for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"step": 1000, "model": prefixed(model), "ema": prefixed(ema)}, path)
    return model, ema


def test_an_official_layout_checkpoint_loads_strictly_with_its_ema(tmp_path):
    config = DTLSConfig(dim=8, dim_mults=(1, 2, 4, 8), attn_heads=1, attn_dim_head=32, max_level=28)
    path = tmp_path / "SR_16_128_s4.pt"
    model, ema = official_checkpoint(path, config)
    loaded, inferred, metadata = load_model(path)
    assert inferred == config and metadata["format"] == "official-dtls"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x, 5), ema.eval()(x, 5))
        assert not torch.equal(loaded(x, 5), model.eval()(x, 5))


def test_official_key_layout_matches_the_spec():
    keys = set(DTLSUNet(OFFICIAL_16_128).state_dict())
    assert len(keys) == 238
    assert {"time_mlp.1.weight", "downs.0.0.ds_conv.weight", "downs.0.2.fn.norm.g", "downs.1.0.net.0.g",
            "downs.0.2.fn.fn.to_qkv.weight", "downs.2.3.weight", "mid_attn.fn.fn.to_out.bias",
            "ups.0.3.weight", "final_conv.0.net.1.weight", "final_conv.1.weight"} <= keys
    assert "downs.0.0.net.0.g" not in keys and "final_conv.0.mlp.1.weight" not in keys
    assert infer_official_config(DTLSUNet(OFFICIAL_16_128).state_dict()) == OFFICIAL_16_128


def test_a_checkpoint_with_a_missing_key_is_refused_not_half_loaded(tmp_path):
    config = DTLSConfig(dim=8, dim_mults=(1, 2), attn_heads=1, attn_dim_head=32)
    path = tmp_path / "broken.pt"
    state = {f"denoise_fn.{k}": v for k, v in DTLSUNet(config).state_dict().items() if "mid_block2.net.3" not in k}
    torch.save({"step": 1, "ema": state}, path)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_model(path)


class WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "SR_32_512_s16.pt"
    torch.save({"step": 1, "ema": {"denoise_fn.time_mlp.1.weight": WritesFile(marker)}}, path)
    with pytest.raises(CheckpointError, match="would run code"):
        load_model(path)
    assert not marker.exists()


def test_safetensors_round_trip_and_a_foreign_file_is_refused(tmp_path):
    torch.manual_seed(1)
    unet = DTLSUNet(TINY)
    path = tmp_path / "tiny.safetensors"
    save_safetensors(unet, TINY, path, dtype=torch.float16)
    loaded, config, metadata = load_model(path)
    assert config == TINY and metadata["architecture"] == "dtls"
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (loaded(x, 3) - unet(x, 3)).abs().max() < 1e-2
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"architecture": "srdiff"})
    with pytest.raises(CheckpointError, match="not DTLS"):
        load_model(other)


# -- the method in the app ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "dtls-tiny.safetensors"
    save_safetensors(DTLSUNet(TINY), TINY, path)
    return path


def run(host, image, weights_file, events=None, **fields):
    return run_plugin(host, "dtls", image, weights_file, events, **fields)


def test_dtls_is_listed_with_its_declared_parameters(host):
    method = host.method("dtls")
    assert {p.name for p in method.param_set} == {"sampler", "lr_consistency"}
    assert method.capabilities.arbitrary_scale and method.capabilities.previews


def test_upscale_any_aspect_is_deterministic_and_previews_every_call(host, weights, rng):
    image, a = upscale_with_previews(host, "dtls", weights, rng, 2)
    assert np.array_equal(a.rgb, run(host, image, weights, scale=4, seed=99).rgb)  # no noise: seeds change nothing


def test_fast_and_official_samplers_agree_in_the_app(host, weights, rng):
    # In float32: the two forms are the same sum in another order, which bf16 (the default on CPUs with native
    # bf16, where this failed) rounds apart by more than the tolerance.
    image = ImageData(rgb=rng.random((8, 8, 3), dtype=np.float32))
    fast = run(host, image, weights, scale=8, params={"sampler": "fast"}, precision="float32")
    loop = run(host, image, weights, scale=8, params={"sampler": "momentum"}, precision="float32")
    assert fast.size == (64, 64) and np.abs(fast.rgb - loop.rgb).max() < 1e-4


def test_exact_sizes_and_scales_beyond_the_model(host, weights, rng):
    check_exact_sizes_and_shrinks(host, "dtls", weights, rng, 20, (320, 180))  # x16 by DTLS, the rest by Lanczos


@SHARED_APP_CHECKS
def test_what_dtls_shares_with_dossr_in_the_app(host, weights, rng, check):
    check(host, "dtls", weights, rng)


# -- training -----------------------------------------------------------------------------


def test_levels_are_drawn_reproducibly_with_weight_on_the_calls_the_sampler_makes():
    task = DTLSTask(TINY, DTLSUNet(TINY))
    draw = lambda: task.sample_levels(4000, torch.Generator().manual_seed(3))  # noqa: E731
    levels = draw()
    assert torch.equal(levels, draw())
    share = lambda t: float((levels == t).float().mean())  # noqa: E731
    assert share(24) > 0.25 and share(1) > 0.25 and 0 < share(10) < 0.05
    assert int(levels.max()) <= TINY.max_level


def test_the_start_level_is_fed_the_enlarged_lr_itself():
    task = DTLSTask(TINY, DTLSUNet(TINY))
    hr, lr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 8, 8)
    x = task.inputs(lr, hr, torch.tensor([24, 3]))
    assert torch.allclose(x[0], task.degrade.enlarge(lr[:1], (32, 32))[0])
    assert torch.allclose(x[1], task.degrade(hr[1:], 3)[0])


def test_a_large_image_runs_in_blended_tiles_with_previews_in_each(host, weights, rng):
    smooth = np.kron(rng.random((4, 10, 3)), np.ones((6, 6, 1))).astype(np.float32)  # 24 x 60
    image = ImageData(rgb=smooth)
    events = []
    tiled = run(host, image, weights, events, scale=4, tile_size=24, tile_overlap=8)
    whole = run(host, image, weights, scale=4, tile_size=0)
    assert tiled.size == whole.size == (240, 96)
    assert len({e.preview_box for e in events if e.preview is not None}) >= 2
    # The tiles overlap and blend: no seam stands out against the untiled result.
    assert np.abs(tiled.rgb - whole.rgb).mean() < 0.02


@pytest.mark.parametrize(
    ("field", "value"),
    [("levels", 4_000_000_000), ("dim", 1e7), ("dim_mults", [1, 2, 10**9]), ("attn_heads", "4"), ("residual", 1)],
)
def test_config_values_in_a_header_are_checked_against_sane_bounds(tmp_path, field, value):
    """Issue 18: metadata was trusted (a timesteps of 4e9 tried to allocate many GB)."""
    import json

    from safetensors.torch import save_file

    config = json.loads(TINY.to_json()) | {field: value}
    path = tmp_path / "hostile.safetensors"
    save_file({k: v.contiguous() for k, v in DTLSUNet(TINY).state_dict().items()}, str(path),
              metadata={"architecture": "dtls", "format": "sr-desk", "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match=field):
        load_model(path)


@pytest.mark.slow
def test_the_scales_bench_runs_end_to_end(tmp_path, weights, rng, capsys):
    import importlib.util
    from pathlib import Path

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(10):
        Image.fromarray((np.kron(rng.random((4, 4, 3)), np.ones((16, 16, 1))) * 255).astype(np.uint8)).save(
            photos / f"p{i}.png")
    path = Path(__file__).resolve().parents[1] / "bench" / "dtls_scales.py"
    spec = importlib.util.spec_from_file_location("bench_dtls_scales", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--data", str(photos), "--crop", "32", "--scales", "4,8", "--weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "dtls (fast)" in out and "official loop / fast sampler time: x4" in out


def test_on_the_shipped_weights_the_fast_sampler_gives_the_official_loops_image(rng):
    """Spec 5.2 checked where it matters: the two-call form equals the released momentum loop."""
    from sr_desk_resources import WEIGHTS_DIR

    path = WEIGHTS_DIR / "dtls-x4.safetensors"
    if not path.exists():
        pytest.skip("no shipped DTLS weights")
    unet, config, _ = load_model(path)
    d = Degradation(config.levels, config.downscale)
    lr = torch.from_numpy(np.kron(rng.random((6, 5, 3)), np.ones((2, 2, 1))).astype(np.float32)).permute(2, 0, 1)
    with torch.no_grad():
        for scale in (4, 8):
            start = d.enlarge(lr[None], (12 * scale, 10 * scale))
            t0 = start_level(scale, config.levels)
            loop = momentum_sample(unet, start, t0, d)
            fast = two_call_sample(unet, start, t0, d)
            assert (loop - fast).abs().max() < 1e-5, scale
