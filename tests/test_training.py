"""The shared training engine (sr_desk.training): device data pipeline, loop, resume, and its maths."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sr_desk.training.data import degrade
from sr_desk.diffusion.imresize import imresize
from sr_desk.training.log import read_log
from sr_desk.training import PhotoBank, TrainOptions, ValidationSet, fit
from sr_desk.training.ema import EMA
from sr_desk.training.loop import bicubic_score
from sr_desk.training.metrics import luma, psnr_y
from sr_desk.training.photos import dihedral_maps, reference_crops
from sr_desk.training.schedule import learning_rate, time_paced_rate


@pytest.fixture
def photos(rng):
    sizes = [(50, 70), (40, 33), (64, 64), (20, 90)]  # the last is too small for 32 px patches
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


# -- data on the device ---------------------------------------------------------------


def test_crops_equal_numpy_slicing_for_the_same_seed(photos):
    bank = PhotoBank(photos, patch=32, scale=4)
    assert len(bank.photos) == 3
    plan = bank.plan(200, torch.Generator().manual_seed(7))
    assert set(plan.symmetry.tolist()) == set(range(8))  # every flip and turn is drawn
    np.testing.assert_array_equal(bank.crops(plan).numpy(), reference_crops(bank.photos, 32, plan))
    again = bank.plan(200, torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(vars(plan).values(), vars(again).values()))


def test_batch_degradation_equals_the_reference_degradation(photos):
    bank = PhotoBank(photos, patch=32, scale=4)
    lr, hr = bank.batch(6, torch.Generator().manual_seed(3))
    plan = bank.plan(6, torch.Generator().manual_seed(3))
    reference_hr = torch.from_numpy(reference_crops(bank.photos, 32, plan)).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(hr, reference_hr, rtol=0, atol=0)
    torch.testing.assert_close(lr, degrade(reference_hr, 4), rtol=0, atol=0)
    assert lr.shape == (6, 3, 8, 8) and hr.dtype == torch.float32


def test_corners_cover_the_whole_photo_and_stay_inside(photos):
    bank = PhotoBank(photos[:1], patch=32, scale=4)
    plan = bank.plan(4000, torch.Generator().manual_seed(0))
    assert plan.y.min() == 0 and plan.y.max() == 50 - 32
    assert plan.x.min() == 0 and plan.x.max() == 70 - 32


def test_dihedral_maps_are_eight_distinct_permutations():
    rows, cols = dihedral_maps(5)
    flat = {tuple((rows[k] * 5 + cols[k]).flatten().tolist()) for k in range(8)}
    assert len(flat) == 8 and all(sorted(f) == list(range(25)) for f in flat)


def test_bank_refuses_bad_setups(photos):
    with pytest.raises(ValueError, match="multiple of the scale"):
        PhotoBank(photos, patch=30, scale=4)
    with pytest.raises(ValueError, match="at least 100 px"):
        PhotoBank(photos, patch=100, scale=4)


# -- maths, against closed forms --------------------------------------------------------


def test_learning_rate_warmup_then_cosine_to_the_floor():
    kw = dict(peak=1.0, total=110, warmup=10, floor_ratio=0.1)
    assert learning_rate(0, **kw) == pytest.approx(0.1)
    assert learning_rate(9, **kw) == pytest.approx(1.0)
    assert learning_rate(10, **kw) == pytest.approx(1.0)
    assert learning_rate(60, **kw) == pytest.approx(0.55)  # half way: the mean of peak and floor
    assert learning_rate(35, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert learning_rate(110, **kw) == pytest.approx(0.1) == learning_rate(500, **kw)


def test_time_paced_rate_follows_the_share_of_the_budget_spent():
    kw = dict(peak=1.0, warmup=10, floor_ratio=0.1)
    assert time_paced_rate(4, 0.9, **kw) == pytest.approx(0.5)  # warm-up counts steps, whatever the clock says
    assert time_paced_rate(10, 0.0, **kw) == pytest.approx(1.0)
    assert time_paced_rate(50, 0.5, **kw) == pytest.approx(0.55)
    assert time_paced_rate(50, 0.25, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert time_paced_rate(99, 1.0, **kw) == pytest.approx(0.1) == time_paced_rate(99, 1.7, **kw)


def test_ema_update_is_the_closed_form_lerp():
    live = nn.Linear(3, 2)
    ema = EMA(live, decay=0.9)
    start = [p.clone() for p in ema.shadow.parameters()]
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    ema.update(live, step=1000)
    for s, s0, p in zip(ema.shadow.parameters(), start, live.parameters()):
        torch.testing.assert_close(s, 0.9 * s0 + 0.1 * p)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.9
    assert not any(p.requires_grad for p in ema.shadow.parameters())


def test_psnr_y_closed_form():
    hr = torch.full((2, 3, 16, 16), 102 / 255)  # on the 8-bit grid, so quantising changes nothing
    sr = hr + 10 / 255  # Y moves by 10 * (65.481 + 128.553 + 24.966) / 255 grey levels
    delta = 10 * (65.481 + 128.553 + 24.966) / 255
    assert psnr_y(sr, hr, shave=4) == pytest.approx(10 * math.log10(255**2 / delta**2), abs=1e-3)
    assert luma(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16.0)
    assert luma(torch.ones(1, 3, 1, 1)).item() == pytest.approx(235.0)


# -- the loop ----------------------------------------------------------------------------


class TinyUpscaler:
    """The smallest TrainingTask: bicubic plus a learnt 3x3 correction."""

    stage = "tiny"
    scale = 4

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.module = nn.Conv2d(3, 3, 3, padding=1)
        nn.init.zeros_(self.module.weight)
        nn.init.zeros_(self.module.bias)

    def config_json(self) -> str:
        return '{"kind": "tiny"}'

    def predict(self, module, lr):
        up = imresize(lr, scale=4.0)
        return up + module(up)

    def loss(self, module, lr, hr, generator):
        jitter = 1e-3 * torch.randn(hr.shape, generator=generator)  # randomness that resume must replay
        return (self.predict(module, lr) - hr - jitter).abs().mean()

    def flops_per_sample(self, patch):
        return 2.0 * 27 * 3 * patch * patch


def _smooth_photos(rng, count=3):
    return [np.kron(rng.random((6, 8, 3)), np.ones((12, 12, 1))).__mul__(255).astype(np.uint8) for _ in range(count)]


def _options(out: Path, **kw) -> TrainOptions:
    base = dict(out=out, steps=6, batch=4, lr=1e-2, warmup=2, ema=0.5, log_every=1, ckpt_every=3, val_every=3,
                progress=False)
    base.update(kw)
    return TrainOptions(**base)


def test_tiny_model_trains_logs_and_checkpoints(tmp_path, rng):
    photos = _smooth_photos(rng)
    bank = PhotoBank(photos, patch=32, scale=4)
    lr, hr = bank.batch(4, torch.Generator().manual_seed(99))
    val = ValidationSet(lr=lr, hr=hr, bicubic_psnr=bicubic_score(lr, hr, 4))
    task = TinyUpscaler()
    ema = fit(task, bank, val, _options(tmp_path, steps=30))
    assert not torch.equal(ema.weight, torch.zeros_like(ema.weight))
    rows = read_log(tmp_path / "log.csv")
    assert len(rows) == 30 and rows[-1]["val_psnr"] and float(rows[-1]["train_tflops"]) > 0
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert (tmp_path / "tiny.pt").exists() and (tmp_path / "loss.png").exists()
    state = torch.load(tmp_path / "tiny.pt", weights_only=True)  # nothing in it needs unpickling code
    assert state["step"] == 30


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16-autocast"])
def test_resumed_run_gives_the_same_weights_as_an_uninterrupted_one(tmp_path, rng, precision):
    photos = _smooth_photos(rng)
    straight = fit(TinyUpscaler(), PhotoBank(photos, 32, 4), None, _options(tmp_path / "a", precision=precision))
    fit(TinyUpscaler(), PhotoBank(photos, 32, 4), None,
        _options(tmp_path / "b", steps=6, minutes=0.0, precision=precision))
    assert torch.load(tmp_path / "b" / "tiny.pt", weights_only=True)["step"] == 1  # stopped by the time budget
    resumed = fit(TinyUpscaler(), PhotoBank(photos, 32, 4), None,
                  _options(tmp_path / "b", resume=True, precision=precision))
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_run_paced_by_time_trains_until_the_budget_and_ends_at_the_floor(tmp_path, rng, monkeypatch):
    import types

    from sr_desk.training import loop

    # The loop's clock ticks 10 ms at every reading, however busy the machine is: the last step then starts
    # within a few ticks of the 1.2 s budget's end, so its learning rate is the floor's.
    ticks = iter(range(10**9))
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(monotonic=lambda: next(ticks) * 0.01))
    options = _options(tmp_path, steps=0, minutes=0.02, log_every=1000, ckpt_every=1000, lr_floor=0.25)
    fit(TinyUpscaler(), PhotoBank(_smooth_photos(rng), 32, 4), None, options)
    rows = read_log(tmp_path / "log.csv")
    assert len(rows) == 1 and int(rows[0]["step"]) > 2  # only the last step logs: the budget, not a count, ended it
    assert float(rows[0]["lr"]) == pytest.approx(0.25 * options.lr, rel=0.05)
    assert torch.load(tmp_path / "tiny.pt", weights_only=True)["step"] == int(rows[0]["step"])
    with pytest.raises(ValueError, match="needs a time budget"):
        fit(TinyUpscaler(), PhotoBank(_smooth_photos(rng), 32, 4), None, _options(tmp_path / "x", steps=0))


def test_resume_refuses_another_configuration(tmp_path, rng):
    photos = _smooth_photos(rng)
    fit(TinyUpscaler(), PhotoBank(photos, 32, 4), None, _options(tmp_path, steps=1))
    other = TinyUpscaler()
    other.config_json = lambda: '{"kind": "other"}'  # type: ignore[method-assign]
    with pytest.raises(SystemExit, match="another configuration"):
        fit(other, PhotoBank(photos, 32, 4), None, _options(tmp_path, resume=True))


@pytest.mark.slow
def test_throughput_bench_prints_every_stage_and_loop(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "train_throughput.py"
    spec = importlib.util.spec_from_file_location("sr_desk_bench_train_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up while the file runs
    spec.loader.exec_module(bench)
    args = ["--batch", "2", "--patch", "32", "--iters", "1", "--device", "cpu", "--size", "tiny",
            "--loops", "old,bf16"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "measured bf16 matmul" in out.splitlines()[0]
    rows = [[c.strip() for c in line.strip("| ").split(" | ")] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| stage")]
    assert [(r[0], r[1]) for r in rows] == [(stage, loop) for stage in bench.STAGES
                                            for loop in ("old", "bf16")]
    for cells in rows:
        assert float(cells[4]) > 0 and cells[5].endswith("%") and cells[7].endswith("%") and cells[8].endswith("x")


def test_a_stop_request_ends_the_run_with_a_checkpoint(tmp_path, rng, capsys):
    import os
    import signal

    def stop_after_two(row):
        if row["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill` or a closing terminal sends

    fit(TinyUpscaler(), PhotoBank(_smooth_photos(rng), 32, 4), None, _options(tmp_path), on_log=stop_after_two)
    assert torch.load(tmp_path / "tiny.pt", weights_only=True)["step"] == 3  # the step under way is finished
    assert "SIGTERM received: stopped at step 3" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone after the run


def test_validation_scores_the_weights_in_float32_whatever_the_training_precision(rng):
    """A residual over bicubic smaller than bf16's step still shows in the held-out score."""
    from sr_desk.training.loop import validate

    photos = _smooth_photos(rng)
    lr, hr = PhotoBank(photos, 32, 4).batch(4, torch.Generator().manual_seed(3))
    val = ValidationSet(lr=lr, hr=hr, bicubic_psnr=bicubic_score(lr, hr, 4))
    task = TinyUpscaler()
    with torch.no_grad():
        task.module.bias.fill_(1e-3)  # a quarter of a grey level: below bf16's resolution near 1.0
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as a bf16 run's loop would be
        score = validate(task, task.module, val)
    assert score == pytest.approx(psnr_y(task.predict(task.module, lr), hr, shave=4), abs=1e-9)
    assert score != pytest.approx(val.bicubic_psnr, abs=1e-6)


def test_exported_weights_name_the_photos_a_pack_was_made_from(tmp_path):
    from sr_desk.training.export import SOURCE_NOTE, describe_training_data

    pack = tmp_path / "pack"
    pack.mkdir()
    assert describe_training_data(pack, "bicubic x4 LR") == \
        f"{pack}, 90% of the photos by file name (10% held out), bicubic x4 LR"
    (pack / SOURCE_NOTE).write_text("the photos of ../shared/data/train\nas JPEG\n")
    assert describe_training_data(pack, "bicubic x4 LR") == \
        f"{pack} (the photos of ../shared/data/train as JPEG), 90% of the photos by file name (10% held out), " \
        "bicubic x4 LR"
    assert describe_training_data(None, "x").startswith("a photo folder not recorded")


def test_a_scale_mix_draws_its_scales_in_their_shares_and_degrades_the_batch_to_the_drawn_one():
    from sr_desk.training.data import ScaleMix

    hr = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    own_lr = degrade(hr, 4)
    assert ScaleMix({4: 1.0}).lr_for(own_lr, hr, 4, torch.Generator().manual_seed(0)) is own_lr
    assert torch.equal(ScaleMix({2: 1.0}).lr_for(own_lr, hr, 4, torch.Generator().manual_seed(0)), degrade(hr, 2))
    mix, generator = ScaleMix({2: 0.2, 3: 0.2, 4: 0.6}), torch.Generator().manual_seed(1)
    draws = [mix.draw(generator) for _ in range(2000)]
    assert set(draws) == {2, 3, 4} and draws.count(4) / len(draws) == pytest.approx(0.6, abs=0.04)
