"""`sr-desk train srdiff` on a tiny model and a folder of small synthetic photos: stages, resume, export, use."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sr_desk.training.data import split_holdout
from sr_desk_plugins.srdiff.checkpoints import load_model
from tests.conftest import write_smooth_photos

pytestmark = pytest.mark.slow


@pytest.fixture
def photos(tmp_path, rng):
    return write_smooth_photos(tmp_path / "photos", rng, 20)


def test_holdout_is_a_fixed_tenth_by_name(photos):
    paths = sorted(photos.iterdir())
    train, held = split_holdout(paths)
    assert len(held) == 2 and not set(held) & set(train)
    assert split_holdout(list(reversed(paths)))[1] == sorted(held, reverse=True)
    more = paths + [photos / "new_photo.png"]  # a photo added later never moves a held-out one to training
    assert set(held) <= set(split_holdout(more)[1])


SHIPPED = Path(__file__).resolve().parents[1] / "resources" / "weights" / "srdiff-x4.safetensors"


def test_init_starts_both_stages_from_shipped_weights(tmp_path):
    from sr_desk_plugins.srdiff import train

    shipped, shipped_config, _ = load_model(SHIPPED)
    args = train.build_parser().parse_args(["--out", str(tmp_path), "--init", str(SHIPPED), "--stage", "encoder"])
    task = train.build_task(args)
    assert task.config == shipped_config  # the architecture and both switches come from the file
    for key, value in shipped.rrdb.state_dict().items():
        assert torch.equal(task.module.state_dict()[key], value)

    args = train.build_parser().parse_args(["--out", str(tmp_path), "--init", str(SHIPPED), "--stage", "diffusion",
                                            "--residual-base", shipped_config.residual_base])
    task = train.build_task(args)
    for key, value in shipped.denoise_fn.state_dict().items():
        assert torch.equal(task.module.state_dict()[key], value)
    assert (tmp_path / train.FROZEN_ENCODER).exists()  # so that --export finds the encoder the U-Net learnt with


def test_init_from_an_encoder_without_the_skip_starts_the_skip_at_zero(tmp_path):
    from sr_desk_plugins.srdiff import train
    from sr_desk_plugins.srdiff.checkpoints import save_safetensors
    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import SRDiffModel

    torch.manual_seed(0)
    paper_form = SRDiffConfig(rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2))
    model = SRDiffModel(paper_form)
    path = tmp_path / "paper-form.safetensors"
    save_safetensors(model, paper_form, path)
    args = train.build_parser().parse_args(["--out", str(tmp_path), "--init", str(path), "--stage", "encoder"])
    task = train.build_task(args)
    assert task.config.encoder_skip and not paper_form.encoder_skip
    for key, value in model.rrdb.state_dict().items():
        if key.startswith("conv_last"):
            assert not task.module.state_dict()[key].any()  # the skip starts exactly at bicubic
        else:
            assert torch.equal(task.module.state_dict()[key], value)
    with pytest.raises(SystemExit, match="encoder_skip=False"):
        train.build_task(train.build_parser().parse_args(
            ["--out", str(tmp_path / "other"), "--init", str(path), "--stage", "diffusion"]))


def test_skip_encoder_with_a_zero_tail_is_bicubic():
    from sr_desk.diffusion.imresize import imresize
    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import RRDBNet

    encoder = RRDBNet(SRDiffConfig(rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, encoder_skip=True))
    torch.nn.init.zeros_(encoder.conv_last.weight)
    torch.nn.init.zeros_(encoder.conv_last.bias)
    lr = torch.rand(1, 3, 10, 12)
    expected = imresize(lr, scale=4.0).clamp(0, 1) * 2 - 1
    torch.testing.assert_close(encoder.upscale(lr * 2 - 1), expected)


def test_residual_measured_from_the_encoder(tmp_path, rng):
    from sr_desk_plugins.srdiff import methods
    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import SRDiffModel

    config = SRDiffConfig(rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2), encoder_skip=True,
                          residual_base="encoder")
    model = SRDiffModel(config).eval()
    loaded = methods.LoadedModel(encoder=model.rrdb, unet=model.denoise_fn, config=config,
                                 schedule=methods.cosine_schedule(100, 0.008), official_quirk=False, source="test")
    lr = torch.from_numpy(rng.random((1, 3, 8, 8), dtype=np.float32))
    cond = methods.condition(loaded, lr, edge_margin=False)
    torch.testing.assert_close(cond.up, model.rrdb.upscale(lr * 2 - 1))
    assert SRDiffConfig.from_json(config.to_json()) == config


@pytest.mark.slow
def test_trainer_runs_from_a_plain_checkout_without_qt_or_platformdirs(photos, tmp_path):
    """As on the GPU machine: torch and numpy, but no PySide6, no platformdirs, the project not installed."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys; sys.modules.update(PySide6=None, platformdirs=None, sr_desk_plugins=None); "
        "from sr_desk.training.__main__ import main; "
        f"sys.exit(main(['srdiff', '--data', {str(photos)!r}, '--out', {str(tmp_path / 'run')!r}, "
        "'--preset', 'tiny-4x', '--batch', '2', '--patch', '32', '--steps', '2', '--no-progress']))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "encoder.pt").exists() and "step=2" in result.stderr


def test_the_texture_weight_adds_the_texture_loss_of_the_implied_image(rng):
    from sr_desk.training.texture import texture_loss
    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import SRDiffModel
    from sr_desk_plugins.srdiff.train import DiffusionTask

    config = SRDiffConfig(rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2), timesteps=100)
    model = SRDiffModel(config)
    hr = torch.from_numpy(rng.random((2, 3, 16, 16), dtype=np.float32))
    lr = torch.nn.functional.avg_pool2d(hr, 4)

    def loss(texture: float) -> torch.Tensor:
        task = DiffusionTask(config, model.rrdb, model.denoise_fn, 2, texture)
        return task.loss(model.denoise_fn, lr, hr, torch.Generator().manual_seed(0))

    plain, textured = loss(0.0), loss(3.0)
    # The same draws again, to build the implied image by hand.
    task = DiffusionTask(config, model.rrdb, model.denoise_fn, 2)
    generator = torch.Generator().manual_seed(0)
    base, cond = task.base_and_condition(lr)
    x0 = ((hr * 2 - 1 - base) * 2).clamp(-1, 1)
    index = torch.randint(0, config.timesteps, (2,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    abar = task.schedule.alphas_cumprod.float()[index].view(-1, 1, 1, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    with torch.no_grad():
        eps = model.denoise_fn(x_t, index, model.denoise_fn.project_condition(cond)).float()
    implied = ((x_t - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
    expected = texture_loss(base + implied / 2, hr * 2 - 1, abar.reshape(-1))
    assert float(textured.detach()) == pytest.approx(float(plain.detach()) + 3.0 * float(expected), rel=1e-4)
    textured.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.denoise_fn.parameters())
