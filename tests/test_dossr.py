"""DoSSR: the network, its checkpoints, the method in the app and its trainer (the maths: test_domain_shift.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sr_desk.core.imageio import ImageData
from sr_desk.diffusion.weights_file import CheckpointError
from sr_desk.training.data import ScaleMix
from sr_desk_plugins.dossr.checkpoints import load_model, save_safetensors
from sr_desk_plugins.dossr.config import DoSSRConfig
from sr_desk_plugins.dossr.network import DoSSRUNet
from sr_desk_plugins.dossr.process import integer_scale, pre_restore, process_for, restore
from sr_desk_plugins.dossr.train import GRID_SHARE, PRESETS, DoSSRTask
from tests.conftest import run_plugin
from tests.method_helpers import (
    SHARED_APP_CHECKS,
    check_exact_sizes_and_shrinks,
    random_headed,
    upscale_with_previews,
)

TINY = PRESETS["tiny"]


def random_network(config: DoSSRConfig = TINY, seed: int = 0) -> DoSSRUNet:
    """A network whose head is not zero, so that it changes its input (a trained one does)."""
    return random_headed(DoSSRUNet, config, seed)


# -- network and checkpoints ----------------------------------------------------------------------


def test_an_untrained_network_returns_the_pre_restored_input():
    network = DoSSRUNet(TINY)
    x_t, x_hat = torch.randn(2, 3, 16, 24), torch.rand(2, 3, 16, 24)
    assert torch.equal(network(x_t, x_hat, 499), x_hat)
    assert random_network()(x_t, x_hat, torch.tensor([3, 400])).shape == x_hat.shape


def test_the_time_step_changes_the_prediction():
    network = random_network()
    x = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(network(x, x, 0), network(x, x, 499))


def test_safetensors_round_trip_and_foreign_files_are_refused(tmp_path):
    network = random_network()
    path = tmp_path / "dossr.safetensors"
    save_safetensors(network, TINY, path, metadata={"steps": "7"})
    loaded, config, metadata = load_model(path)
    assert config == TINY and metadata["steps"] == "7" and metadata["architecture"] == "dossr"
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded(x, x, 100), network(x, x, 100))
    other = DoSSRConfig(width=16, mults=(1, 2), attention=False, unshuffle=2)
    with pytest.raises(ValueError, match="do not match"):
        save_safetensors(network, other, tmp_path / "bad.safetensors")
    torch.save(network.state_dict(), tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="not a DoSSR safetensors"):
        load_model(tmp_path / "state.pt")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(CheckpointError):
        load_model(path)


@pytest.mark.parametrize(("field", "value"), [("width", 10**9), ("mults", [1, 10**9]), ("unshuffle", "4"),
                                              ("attention", 1), ("t1", 5000)])
def test_config_values_in_a_header_are_checked(field, value):
    data = {**TINY.__dict__, field: value}
    with pytest.raises(ValueError):
        DoSSRConfig(**data)


# -- sampler glue ---------------------------------------------------------------------------------


def test_pre_restoration_is_the_no_model_reference():
    from sr_desk.diffusion.consistency import back_project
    from sr_desk.diffusion.imresize import imresize

    lr = torch.rand(1, 3, 8, 10)
    expected = back_project(imresize(lr, scale=4.0), lr, 4, 3)
    torch.testing.assert_close(pre_restore(lr, (32, 40)), expected)
    assert integer_scale(lr, (32, 40)) == 4 and integer_scale(lr, (27, 34)) is None
    torch.testing.assert_close(pre_restore(lr, (27, 34)), imresize(lr, size=(27, 34)))


def test_restore_pads_to_the_network_multiple_and_crops_back():
    network = random_network()
    lr = torch.rand(1, 3, 7, 9)
    calls = []
    out = restore(network, lr, (21, 27), process_for(1000, 500), generator=torch.Generator().manual_seed(0),
                  multiple=TINY.size_multiple, callback=lambda k, n, x0: calls.append(x0.shape))
    assert out.shape == (1, 3, 21, 27)
    assert calls == [(1, 3, 21, 27)] * 5


# -- the method in the app ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "dossr-tiny.safetensors"
    save_safetensors(random_network(), TINY, path)
    return path


def run(host, image, weights_file, events=None, **fields):
    return run_plugin(host, "dossr", image, weights_file, events, **fields)


def test_dossr_is_listed_with_its_declared_parameters(host):
    method = host.method("dossr")
    assert [p.name for p in method.param_set] == ["detail", "steps", "solver", "color_fix", "lr_consistency"]
    caps = method.capabilities
    assert caps.arbitrary_scale and caps.previews and caps.seeds


def test_upscale_is_deterministic_by_seed_and_previews_every_call(host, weights, rng):
    image, a = upscale_with_previews(host, "dossr", weights, rng, 5, seed=5)
    assert np.array_equal(a.rgb, run(host, image, weights, scale=4, seed=5).rgb)
    assert not np.array_equal(a.rgb, run(host, image, weights, scale=4, seed=6).rgb)


@pytest.mark.parametrize("solver", ["dos-sde-1", "dos-sde-2", "dos-sde-3", "ddim"])
def test_every_solver_runs_in_the_app(host, weights, rng, solver):
    image = ImageData(rgb=rng.random((8, 8, 3), dtype=np.float32))
    result = run(host, image, weights, scale=2, params={"solver": solver, "steps": 3})
    assert result.size == (16, 16) and np.isfinite(result.rgb).all()


def test_a_draft_takes_one_call(host, weights, rng):
    image = ImageData(rgb=rng.random((8, 8, 3), dtype=np.float32))
    events = []
    run(host, image, weights, events, scale=4, draft=True)
    assert len([e for e in events if e.preview is not None]) == 1


@SHARED_APP_CHECKS
def test_what_dossr_shares_with_dtls_in_the_app(host, weights, rng, check):
    check(host, "dossr", weights, rng)


def test_exact_sizes_non_integer_scales_and_shrinks(host, weights, rng):
    check_exact_sizes_and_shrinks(host, "dossr", weights, rng, 2.7, (43, 24))


# -- training -------------------------------------------------------------------------------------


def test_steps_are_drawn_reproducibly_below_t1_with_weight_on_the_sampler_grid():
    task = DoSSRTask(TINY, DoSSRUNet(TINY))
    draw = lambda: task.sample_steps(8000, torch.Generator().manual_seed(3))  # noqa: E731
    steps = draw()
    assert torch.equal(steps, draw())
    assert int(steps.max()) < TINY.t1
    on_grid = float(torch.isin(steps, torch.tensor([100, 200, 299, 399, 499])).float().mean())
    assert on_grid == pytest.approx(GRID_SHARE, abs=0.03)


def test_a_training_step_runs_and_the_loss_is_l1_on_x0():
    task = DoSSRTask(TINY, DoSSRUNet(TINY))
    hr = torch.rand(4, 3, 24, 24)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    loss = task.loss(task.module, lr, hr, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.ndim == 0 and float(loss.detach()) > 0
    assert task.module.head.weight.grad is not None and task.module.head.weight.grad.abs().sum() > 0
    assert task.predict(task.module.eval(), lr).shape == hr.shape


def test_the_texture_weight_adds_the_texture_loss_to_l1():
    from sr_desk.training.texture import texture_loss

    network = DoSSRUNet(TINY)
    torch.nn.init.normal_(network.head.weight, std=0.1)  # a network that no longer returns x_hat exactly
    hr = torch.rand(4, 3, 24, 24)
    lr = torch.nn.functional.avg_pool2d(hr, 4)

    def make_task(texture: float) -> DoSSRTask:
        task = DoSSRTask(TINY, network, texture=texture)
        task.scale_mix = ScaleMix({4: 1.0})  # the batch's own LR
        return task

    def loss(texture: float) -> float:
        return float(make_task(texture).loss(network, lr, hr, torch.Generator().manual_seed(0)).detach())

    plain, textured = loss(0.0), loss(2.0)
    task = make_task(0.0)
    generator = torch.Generator().manual_seed(0)
    task.scale_mix.draw(generator)
    from sr_desk_plugins.dossr.process import pre_restore

    x0, x_hat = hr * 2 - 1, pre_restore(lr, (24, 24)) * 2 - 1
    steps = task.sample_steps(4, generator)
    x_t = task.process.q_sample(x0, x_hat, steps, torch.randn(x0.shape, generator=generator))
    with torch.no_grad():
        expected = texture_loss(network(x_t, x_hat, steps), x0)
    assert textured == pytest.approx(plain + 2.0 * float(expected), rel=1e-4)


def test_the_compact_preset_is_the_model_card_s_network():
    network = DoSSRUNet(PRESETS["compact"])
    assert sum(p.numel() for p in network.parameters()) == 6_028_752
    assert PRESETS["compact"].size_multiple == 16
