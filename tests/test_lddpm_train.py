"""LDDPM's trainer (issue 15): a step of each stage runs, the style stand-in, and D's state in the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sr_desk.training.__main__ import main as train
from sr_desk.training.data import ScaleMix
from sr_desk_plugins.lddpm.checkpoints import load_model
from sr_desk_plugins.lddpm.network import LDDPMNet
from sr_desk_plugins.lddpm.train import PRESETS, LDDPMTask, style_loss
from tests.conftest import write_smooth_photos

TINY = PRESETS["tiny"]


def test_a_step_of_each_stage_runs_and_the_adversarial_one_trains_the_discriminator():
    for stage in ("denoise", "adversarial"):
        torch.manual_seed(0)
        task = LDDPMTask(TINY, LDDPMNet(TINY).train(), stage)
        hr = torch.rand(2, 3, 32, 32)
        lr = torch.nn.functional.avg_pool2d(hr, 4)
        before = None if task.discriminator is None else task.discriminator.stem.weight.detach().clone()
        loss = task.loss(task.module, lr, hr, torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss) and task.module.head.weight.grad.abs().sum() > 0
        if stage == "adversarial":
            assert not torch.equal(before, task.discriminator.stem.weight)  # D took its own step
            assert all(p.grad is None for p in task.discriminator.parameters())
            assert set(task.extra_state()) == {"discriminator", "d_optimizer", "d_steps"}
        assert task.predict(task.module.eval(), lr).shape == hr.shape


def test_the_diversity_weight_adds_a_term_whose_gradient_reaches_the_latent_path():
    torch.manual_seed(0)
    network = LDDPMNet(TINY).train()
    # a fresh head is zero (every latent gives up(LR) exactly); a small one keeps the outputs below the ceiling
    torch.nn.init.normal_(network.head.weight, std=1e-3)
    hr = torch.rand(4, 3, 32, 32)
    lr = torch.nn.functional.avg_pool2d(hr, 4)

    def loss(diversity: float) -> torch.Tensor:
        network.zero_grad(set_to_none=True)
        task = LDDPMTask(TINY, network, "denoise", diversity=diversity)
        task.scale_mix = ScaleMix({4: 1.0})  # the batch's own LR
        value = task.loss(network, lr, hr, torch.Generator().manual_seed(0))
        value.backward()
        return value.detach()

    plain = loss(0.0)
    plain_grad = network.z_mlp[0].weight.grad.clone()
    diverse = loss(10.0)
    assert float(diverse) < float(plain)  # the term is a reward (at most 0), its draws come after the loss's own
    assert float((network.z_mlp[0].weight.grad - plain_grad).abs().max()) > 0  # the term reaches z_gan's path


def test_the_style_term_sees_texture_not_only_colour():
    flat = torch.full((1, 3, 32, 32), 0.5)
    grain = (flat + 0.1 * torch.randn(1, 3, 32, 32)).clamp(0, 1)
    assert float(style_loss(flat, flat)) == 0.0
    assert float(style_loss(flat, grain)) > 10 * float(style_loss(grain, (grain + 0.001).clamp(0, 1)))


@pytest.mark.slow
def test_both_stages_resume_and_export_from_a_plain_checkout(tmp_path, rng, capsys):
    photos = write_smooth_photos(tmp_path / "photos", rng, 12)
    out = tmp_path / "run"
    common = ["lddpm", "--data", str(photos), "--out", str(out), "--preset", "tiny", "--batch", "2",
              "--patch", "32", "--log-every", "1", "--ckpt-every", "2", "--val-every", "2", "--no-progress"]
    assert train([*common, "--steps", "2"]) == 0
    denoise = tmp_path / "denoise.safetensors"
    assert train(["lddpm", "--out", str(out), "--export", str(denoise)]) == 0
    adversarial = [*common, "--stage", "adversarial", "--init", str(denoise)]
    assert train([*adversarial, "--steps", "2"]) == 0
    assert train([*adversarial, "--steps", "3", "--resume"]) == 0
    assert "resumed adversarial at step 2" in capsys.readouterr().err
    state = torch.load(out / "adversarial.pt", weights_only=True)
    assert state["task"]["d_steps"] == 3  # the discriminator came back with the resume
    weights = tmp_path / "lddpm.safetensors"
    assert train(["lddpm", "--out", str(out), "--stage", "adversarial", "--export", str(weights), "--fp16"]) == 0
    _, config, metadata = load_model(weights)
    assert config == TINY and metadata["steps"] == "3"


def test_the_method_runs_in_the_app_deterministic_by_seed_with_a_preview_per_step(tmp_path, rng):
    from sr_desk.core.imageio import ImageData
    from sr_desk.engine.plugins import PluginHost
    from sr_desk.engine.worker import EventKind
    from sr_desk_plugins import lddpm
    from sr_desk_plugins.lddpm.checkpoints import save_safetensors
    from tests.conftest import run_method

    torch.manual_seed(0)
    net = LDDPMNet(TINY)
    torch.nn.init.normal_(net.head.weight, std=0.05)
    weights = tmp_path / "lddpm-tiny.safetensors"
    save_safetensors(net, TINY, weights)
    host = PluginHost()
    assert host.register(lddpm, "lddpm").ok  # registered by hand: no entry point until it has weights
    method = host.method("lddpm")
    image = ImageData(rgb=rng.random((9, 10, 3), dtype=np.float32))
    events = []
    a = run_method(image, method, events, weights=str(weights), scale=2.7, seed=4)
    assert a.size == (27, 24) and np.isfinite(a.rgb).all()
    assert len([e for e in events if e.kind is EventKind.PROGRESS and e.preview is not None]) == 4
    assert np.array_equal(a.rgb, run_method(image, method, weights=str(weights), scale=2.7, seed=4).rgb)
