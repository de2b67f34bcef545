"""The SRDiff methods end to end through the real pipeline, on a tiny random-weight model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sr_desk.api import ImageInput
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData
from sr_desk.engine.pipeline import JobSpec, prepare, run_job
from sr_desk.engine.worker import EventKind, JobState, Worker
from sr_desk_plugins.srdiff import methods as srdiff_methods
from sr_desk_plugins.srdiff.checkpoints import save_safetensors
from sr_desk_plugins.srdiff.config import SRDiffConfig
from sr_desk_plugins.srdiff.network import SRDiffModel
from tests.conftest import run_plugin as run

TINY = SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    model = SRDiffModel(TINY)
    full = folder / "tiny-full.safetensors"
    save_safetensors(model, TINY, full, metadata={"training_data": "none (random test weights)"})
    encoder = folder / "tiny-encoder.safetensors"
    save_safetensors(model.rrdb, TINY, encoder, metadata={"training_data": "none"})
    return {"full": full, "encoder": encoder}


def document(rgb: np.ndarray) -> ImageData:
    return ImageData(rgb=rgb)


@pytest.fixture
def lr_image(rng):
    return document(rng.random((12, 10, 3), dtype=np.float32))


def test_upscale_is_4x_seeded_and_previews_every_step(host, weights, lr_image):
    events = []
    a = run(host, "srdiff", lr_image, weights["full"], events, seed=1, params={"steps": 5})
    assert a.size == (40, 48)
    previews = [e for e in events if e.kind is EventKind.PROGRESS and e.preview is not None]
    assert len(previews) == 5
    assert all(e.preview.shape == (48, 40, 3) for e in previews)
    again = run(host, "srdiff", lr_image, weights["full"], seed=1, params={"steps": 5})
    other = run(host, "srdiff", lr_image, weights["full"], seed=2, params={"steps": 5})
    assert np.array_equal(a.rgb, again.rgb)
    assert not np.array_equal(a.rgb, other.rgb)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "dpm++2m"])
def test_every_sampler_runs(host, weights, lr_image, sampler):
    result = run(host, "srdiff", lr_image, weights["full"], seed=3, params={"sampler": sampler, "steps": 4})
    assert result.size == (40, 48) and np.isfinite(result.rgb).all()


def test_scale_and_sizes_other_than_4_go_through_the_pipeline(host, weights, lr_image):
    assert run(host, "srdiff", lr_image, weights["full"], seed=1, scale=2, params={"steps": 2}).size == (20, 24)
    assert run(host, "srdiff", lr_image, weights["full"], seed=1, size=(33, 50), params={"steps": 2}).size == (33, 50)


def test_encoder_only_weights_serve_the_fast_method_and_refuse_diffusion(host, weights, lr_image):
    fast = run(host, "srdiff-encoder", lr_image, weights["encoder"])
    assert fast.size == (40, 48)
    same = run(host, "srdiff-encoder", lr_image, weights["full"])
    assert np.array_equal(fast.rgb, same.rgb)
    with pytest.raises(SrDeskError, match="holds only the SRDiff encoder"):
        run(host, "srdiff", lr_image, weights["encoder"], seed=1)


def test_missing_weights_say_what_to_do(host, lr_image, private_home):
    with pytest.raises(SrDeskError, match="SRDiff has no weights installed"):
        spec = prepare(host.method("srdiff"), JobSpec(method_id="srdiff", seed=1))
        from sr_desk.engine.weights import LocalWeights

        with Worker(device="cpu", weights=LocalWeights([private_home])) as worker:
            job = worker.submit(lambda ctx: run_job(lr_image, host.method("srdiff"), spec, ctx))
            job.wait(60)
        raise SrDeskError(job.error)


def test_tiled_encoder_equals_untiled(host, weights, rng):
    image = document(rng.random((40, 420, 3), dtype=np.float32))
    whole = run(host, "srdiff-encoder", image, weights["full"], tile_size=0)
    tiled = run(host, "srdiff-encoder", image, weights["full"], tile_size=220, tile_overlap=144)
    assert np.abs(whole.rgb - tiled.rgb).max() < 1e-4


def test_tiled_diffusion_runs_with_previews_in_each_tile(host, weights, rng):
    events = []
    image = document(rng.random((16, 40, 3), dtype=np.float32))
    result = run(host, "srdiff", image, weights["full"], events, seed=5, tile_size=24, tile_overlap=8,
                 params={"steps": 2})
    assert result.size == (160, 64)
    boxes = {e.preview_box for e in events if e.preview is not None}
    assert len(boxes) >= 2


def test_fusion_changes_only_the_feathered_selection(host, weights, rng):
    # SRDiff's residual is clipped at half the range (spec 8.4): keep the donor within reach of the base.
    base = document((0.45 + 0.1 * rng.random((64, 64, 3))).astype(np.float32))
    donor = ImageInput(np.zeros((20, 20, 3), np.float32) + np.array([0.7, 0.45, 0.4], np.float32))
    region = (24, 24, 16, 16)
    common = {"donor": donor, "steps": 2, "match_colors": False, "mode": "paper"}
    low = run(host, "srdiff-fusion", base, weights["full"], seed=1, region=region, feather=2,
              params={**common, "strength": 2})
    high = run(host, "srdiff-fusion", base, weights["full"], seed=1, region=region, feather=2,
               params={**common, "strength": 100})
    assert low.size == (64, 64)
    outside = np.ones((64, 64), bool)
    outside[24 - 3 : 40 + 3, 24 - 3 : 40 + 3] = False
    for result in (low, high):
        assert np.array_equal(result.rgb[outside], base.rgb[outside])  # bit-identical outside
    inside = (slice(28, 36), slice(28, 36))
    colour = np.array([0.7, 0.45, 0.4])
    assert np.abs(low.rgb[inside] - colour).mean() < 0.05  # small t̄ keeps the donor
    assert np.abs(high.rgb[inside] - colour).mean() > 2 * np.abs(low.rgb[inside] - colour).mean()


def test_fusion_takes_the_donor_where_the_user_placed_it(host, weights, rng):
    base = document((0.45 + 0.1 * rng.random((64, 64, 3))).astype(np.float32))
    half = np.zeros((20, 20, 3), np.float32) + np.array([0.45, 0.45, 0.45], np.float32)
    half[:, 10:] = [0.8, 0.4, 0.3]  # the donor's right half is red
    region = (16, 16, 32, 32)
    common = dict(seed=1, region=region, feather=0)
    fitted = run(host, "srdiff-fusion", base, weights["full"], **common,
                 params={"donor": ImageInput(half), "strength": 2, "steps": 2, "match_colors": False, "mode": "paper"})
    # Placed so that only its grey left half covers the selection: no red inside.
    shifted = ImageInput(half, placement=(16.0, 16.0, 64.0, 64.0))
    moved = run(host, "srdiff-fusion", base, weights["full"], **common,
                params={"donor": shifted, "strength": 2, "steps": 2, "match_colors": False, "mode": "paper"})
    red = np.array([0.8, 0.4, 0.3])
    right = (slice(24, 40), slice(36, 46))
    assert np.abs(fitted.rgb[right] - red).mean() < 0.06
    assert np.abs(moved.rgb[right] - red).mean() > 0.15


def test_fusion_refuses_a_donor_placed_off_the_image(host, weights, rng):
    base = document(rng.random((32, 32, 3), dtype=np.float32))
    donor = ImageInput(np.zeros((8, 8, 3), np.float32), placement=(100.0, 100.0, 8.0, 8.0))
    with pytest.raises(SrDeskError, match="move the donor"):
        run(host, "srdiff-fusion", base, weights["full"], seed=1, region=(4, 4, 8, 8),
            params={"donor": donor, "steps": 2})


def test_fusion_can_move_the_donors_colours_to_the_base(host, weights, rng):
    base = document((0.45 + 0.1 * rng.random((64, 64, 3))).astype(np.float32))
    donor = ImageInput(np.zeros((20, 20, 3), np.float32) + np.array([0.7, 0.45, 0.4], np.float32))
    params = {"donor": donor, "strength": 2, "steps": 2, "mode": "paper"}
    matched = run(host, "srdiff-fusion", base, weights["full"], seed=1, region=(24, 24, 16, 16), feather=0,
                  params={**params, "match_colors": True})
    inside = (slice(28, 36), slice(28, 36))
    assert np.abs(matched.rgb[inside].mean(axis=(0, 1)) - base.rgb[inside].mean(axis=(0, 1))).max() < 0.05


def test_blend_fusion_takes_the_donor_s_detail_and_the_base_s_tone(host, weights, rng):
    """The default mode clones the donor's structure in and lets its edge meet the base (tests/test_blend.py)."""
    base = document((0.45 + 0.05 * rng.random((64, 64, 3))).astype(np.float32))
    stripes = np.zeros((32, 32, 3), np.float32) + 0.8
    stripes[:, ::4] = 0.6  # a bright donor with dark stripes
    result = run(host, "srdiff-fusion", base, weights["full"], seed=1, region=(16, 16, 32, 32), feather=2,
                 params={"donor": ImageInput(stripes), "strength": 2, "steps": 2, "match_colors": False})
    inside = result.rgb[24:40, 24:40, 0]
    assert abs(float(inside.mean()) - 0.47) < 0.1  # the base's tone, not the donor's 0.75
    columns = inside.mean(axis=0)
    assert columns.max() - columns.min() > 0.1  # the stripes came in


def test_the_colour_match_switch_is_the_paper_mode_s_only(host, weights, rng):
    """The blend meets the base's tone at its edge by itself; "Match colours" belongs to the paper mode. A change
    in this session had let it recolour every blended donor that is not a face."""
    base = document((0.45 + 0.05 * rng.random((64, 64, 3))).astype(np.float32))
    donor = ImageInput(np.clip(rng.random((32, 32, 3)) * 0.3 + (0.7, 0.2, 0.1), 0, 1).astype(np.float32))
    common = dict(seed=1, region=(16, 16, 32, 32), feather=2)
    on, off = (run(host, "srdiff-fusion", base, weights["full"], **common,
                   params={"donor": donor, "strength": 2, "steps": 2, "match_colors": match}).rgb
               for match in (True, False))
    assert np.array_equal(on, off)


def test_fusion_needs_a_selection(host, weights, rng):
    base = document(rng.random((32, 32, 3), dtype=np.float32))
    donor = ImageInput(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(SrDeskError, match=r"select the region.*--region X,Y,W,H"):
        run(host, "srdiff-fusion", base, weights["full"], seed=1, params={"donor": donor, "steps": 2})


@pytest.mark.parametrize("sampler", ["ancestral", "dpm++2m"])
def test_interpolation_ends_reproduce_the_two_seeds(host, weights, lr_image, sampler):
    common = {"sampler": sampler, "steps": 4}
    first = run(host, "srdiff", lr_image, weights["full"], seed=11, params=common)
    second = run(host, "srdiff", lr_image, weights["full"], seed=22, params=common)
    at = {}
    for blend in (0.0, 0.5, 0.55, 1.0):
        at[blend] = run(host, "srdiff-interpolate", lr_image, weights["full"], seed=11,
                        params={**common, "seed_b": 22, "blend": blend}).rgb
    assert np.allclose(at[0.0], first.rgb, atol=1e-6)
    assert np.allclose(at[1.0], second.rgb, atol=1e-6)
    step = np.abs(at[0.55] - at[0.5]).mean()
    assert step < np.abs(at[1.0] - at[0.0]).mean() / 3  # a small slider move is a small change


def test_interpolation_at_a_partial_noise_level(host, weights, lr_image):
    params = {"seed_b": 4, "blend": 0.3, "noise_level": 50, "mode": "linear", "steps": 3}
    result = run(host, "srdiff-interpolate", lr_image, weights["full"], seed=3, params=params)
    assert result.size == (40, 48) and np.isfinite(result.rgb).all()


def test_a_draft_interpolation_takes_fewer_steps_and_a_run_all_of_them(host, weights, lr_image):
    from sr_desk_plugins.srdiff.methods import DRAFT_STEPS, draft_params

    assert draft_params({"sampler": "ancestral", "steps": 20}) == {"sampler": "dpm++2m", "steps": DRAFT_STEPS}
    assert draft_params({"sampler": "ddim", "steps": 3, "eta": 0.5}) == {"sampler": "ddim", "steps": 3, "eta": 0.5}
    params = {"seed_b": 4, "blend": 0.3, "steps": 20}
    counts = {}
    for draft in (False, True):
        events = []
        run(host, "srdiff-interpolate", lr_image, weights["full"], events, seed=3, params=params, draft=draft)
        counts[draft] = sum(e.preview is not None for e in events)  # one preview per denoiser step
    assert counts == {False: 20, True: DRAFT_STEPS}


def test_a_live_draft_shows_a_quick_look_of_the_shrunk_input_first_then_refines(host, weights, rng):
    """Issue 28: a slider move's first picture comes from the input shrunk to QUICK_SIDE in QUICK_STEPS steps."""
    from sr_desk_plugins.srdiff import DEFAULT_STEPS
    from sr_desk_plugins.srdiff.methods import DRAFT_STEPS, QUICK_SIDE

    image = document(rng.random((120, 160, 3), dtype=np.float32))
    events = []
    params = {"seed_b": 4, "blend": 0.6}
    result = run(host, "srdiff-interpolate", image, weights["full"], events, seed=3, params=params, draft=True)
    previews = [e.preview for e in events if e.preview is not None]
    assert previews[0].shape[:2] == (QUICK_SIDE * 3 // 4 * 4, QUICK_SIDE * 4)  # the quick look, 4x of 96 x 72
    assert [p.shape[:2] for p in previews[1:]] == [(480, 640)] * min(DEFAULT_STEPS, DRAFT_STEPS)  # then the draft
    assert result.size == (640, 480)


@pytest.mark.parametrize("method_id", ["srdiff", "srdiff-encoder"])
def test_lr_consistency_makes_the_result_downscale_to_the_input(host, weights, rng, method_id):
    from sr_desk.diffusion.imresize import imresize

    ramp = np.linspace(0.2, 0.8, 16, dtype=np.float32)
    image = document((ramp[:, None, None] * ramp[None, :, None] + 0.1 * rng.random((16, 16, 3))).astype(np.float32))
    errors = {}
    for on in (False, True):
        params = {"lr_consistency": on} | ({"steps": 4} if method_id == "srdiff" else {})
        result = run(host, method_id, image, weights["full"], seed=2, params=params)
        down = imresize(torch.from_numpy(result.rgb).permute(2, 0, 1)[None], scale=0.25)
        errors[on] = float(np.abs(down[0].permute(1, 2, 0).numpy() - image.rgb).mean())
    assert errors[True] < 0.5 * errors[False], errors


def test_cancel_stops_within_one_denoiser_step(host, weights, rng):
    image = document(rng.random((16, 16, 3), dtype=np.float32))
    method = host.method("srdiff")
    spec = prepare(method, JobSpec(method_id="srdiff", seed=1, weights=str(weights["full"]),
                                   params={"sampler": "ancestral"}))
    calls = []
    cancelled_at = []
    first_preview = threading.Event()
    with Worker(device="cpu") as worker:
        def on_event(event):
            if event.kind is EventKind.PROGRESS and event.preview is not None and not first_preview.is_set():
                first_preview.set()
                cancelled_at.append(len(calls))
                job.cancel()

        job = worker.submit(lambda ctx: run_job(image, method, spec, ctx), on_event=on_event)
        loaded = None
        while loaded is None and not job.wait(0.01):
            loaded = srdiff_methods._models.model
        if loaded is not None:
            loaded.unet.register_forward_hook(lambda *a: calls.append(1))
        assert job.wait(60)
    assert job.state is JobState.CANCELLED
    assert cancelled_at and len(calls) - cancelled_at[0] <= 1


def test_an_official_8x_legacy_checkpoint_runs_at_8x_with_the_quirk(host, tmp_path, lr_image):
    from tests.test_srdiff_checkpoints import _schedule_buffers, _write_legacy

    torch.manual_seed(1)
    config8 = SRDiffConfig(scale=8, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2))
    official = {"global_step": 300000, "optimizer_states": [],
                "state_dict": {"model": {**SRDiffModel(config8).state_dict(), **_schedule_buffers()}}}
    legacy = _write_legacy(tmp_path / "model_ckpt_steps_300000.ckpt", official)
    result = run(host, "srdiff", lr_image, legacy, seed=1, scale=8, params={"steps": 2})
    assert result.size == (80, 96)
    loaded = srdiff_methods._models.model
    assert loaded.official_quirk and loaded.config.scale == 8
    # The same 8x model asked for x4 answers through a resize of its own result.
    assert run(host, "srdiff", lr_image, legacy, seed=1, scale=4, params={"steps": 2}).size == (40, 48)


def test_fusion_runs_an_official_8x_checkpoint_and_names_it_a_face_prior(host, tmp_path, rng):
    """Issue 33: the paper's fusion model is the official CelebA 8x checkpoint; given with --weights, fusion runs
    at its scale and says which prior redraws the face (the built-in one gets a warning instead)."""
    from tests.test_srdiff_checkpoints import _schedule_buffers, _write_legacy

    torch.manual_seed(2)
    config8 = SRDiffConfig(scale=8, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2))
    official = {"global_step": 300000, "optimizer_states": [],
                "state_dict": {"model": {**SRDiffModel(config8).state_dict(), **_schedule_buffers()}}}
    legacy = _write_legacy(tmp_path / "model_ckpt_steps_300000.ckpt", official)
    base = document(rng.random((64, 64, 3), dtype=np.float32))
    donor = ImageInput(rng.random((24, 24, 3), dtype=np.float32))
    events: list = []
    result = run(host, "srdiff-fusion", base, legacy, events, seed=1, region=(16, 16, 32, 32), feather=2,
                 params={"donor": donor, "strength": 20, "steps": 2})
    assert result.size == (64, 64) and not np.array_equal(result.rgb, base.rgb)
    messages = " ".join(getattr(event, "message", "") or "" for event in events)
    assert "prior model_ckpt_steps_300000.ckpt (trained on faces)" in messages
    assert "no face found in the selection: the donor covers the selection" in messages


def test_the_built_in_weights_leave_no_noisy_last_column(host):
    """Issue 19: the rightmost column of every SRDiff result was coloured noise, a defect the U-Net learnt."""
    from sr_desk_resources import WEIGHTS_DIR

    y, x = np.mgrid[0:20, 0:24].astype(np.float32)
    image = document(np.stack([x / 24, y / 20, np.full_like(x, 0.5)], axis=-1))
    result = run(host, "srdiff", image, WEIGHTS_DIR / "srdiff-x4.safetensors", seed=1, params={"steps": 4})
    across = np.abs(np.diff(result.rgb, axis=1)).mean(axis=(0, 2))
    down = np.abs(np.diff(result.rgb, axis=0)).mean(axis=(1, 2))
    assert across[-1] < 3 * np.median(across) and down[-1] < 3 * np.median(down)


def test_a_large_output_runs_each_unet_step_in_windows_with_their_condition(host, weights, rng, monkeypatch):
    """Above STEP_TILE the U-Net sees windows (and the matching crop of its condition), blended every step."""
    from sr_desk_plugins.srdiff import methods

    image = document(rng.random((24, 20, 3), dtype=np.float32))
    whole = run(host, "srdiff", image, weights["full"], seed=3, params={"steps": 3})
    calls = []
    monkeypatch.setattr(methods, "STEP_TILE", 64)
    monkeypatch.setattr(methods, "STEP_OVERLAP", 16)
    original = methods.tiled_window_predictor

    def recording(predict, tile, overlap, multiple):
        def spy(window, index, box):
            calls.append((tuple(window.shape[-2:]), box))
            return predict(window, index, box)
        return original(spy, tile, overlap, multiple)

    monkeypatch.setattr(methods, "tiled_window_predictor", recording)
    tiled = run(host, "srdiff", image, weights["full"], seed=3, params={"steps": 3})
    assert tiled.size == whole.size == (80, 96)
    assert len({box for _, box in calls}) > 1 and max(max(shape) for shape, _ in calls) <= 64
    # Windows see less context at their edges; blended at every step, the result stays close to the whole.
    assert 0 < np.abs(tiled.rgb - whole.rgb).mean() < 0.002


def test_the_u_net_cast_once_to_bf16_computes_what_autocast_computes():
    """Issue 28: bf16 sampling casts the U-Net's weights once instead of at every call, with the same arithmetic."""
    torch.manual_seed(1)
    model = SRDiffModel(TINY).eval().requires_grad_(False)
    loaded = srdiff_methods.LoadedModel(encoder=model.rrdb, unet=model.denoise_fn, config=TINY, schedule=None,
                                        official_quirk=False, source="tiny")
    x = torch.randn(1, 3, 32, 24)
    cond = torch.randn(1, TINY.unet_dim, 32, 24).to(torch.bfloat16)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = model.denoise_fn(x, 7, cond).float()
        cast = loaded.unet_in(torch.bfloat16)
        assert loaded.unet_in(torch.bfloat16) is cast and loaded.unet_in(torch.float32) is model.denoise_fn
        got = cast(x.to(torch.bfloat16), 7, cond).float()
    # The same bf16 arithmetic; only the time embedding folded into the bias sums bf16 weights, not float32 ones.
    assert (got - expected).abs().max() <= 0.02 * expected.abs().max()


def test_the_redraw_s_last_draw_rises_only_above_the_default_strength():
    """Up to the default the sampler is as trained (the donor's structure must survive); above it, more noise."""
    from sr_desk_plugins.srdiff.fusion import TOP_REDRAW_GAIN, redraw_noise_gain

    assert [redraw_noise_gain(s) for s in (1, 10, 50)] == [1.0, 1.0, 1.0]
    gains = [redraw_noise_gain(s) for s in (50, 60, 90, 100)]
    assert gains == sorted(set(gains)) and gains[-1] == TOP_REDRAW_GAIN
