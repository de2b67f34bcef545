"""`sr-desk train srdiff` on a tiny model and a folder of small synthetic photos: stages, resume, export, use."""

import json

import numpy as np
import pytest
from PIL import Image

from sr_desk.cli import main
from sr_desk.diffusion.data import split_holdout
from sr_desk_plugins.srdiff.checkpoints import load_model, read_metadata

pytestmark = pytest.mark.slow


@pytest.fixture
def photos(tmp_path, rng):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(20):
        smooth = np.kron(rng.random((6, 8, 3)), np.ones((12, 12, 1)))
        Image.fromarray((smooth * 255).astype(np.uint8)).save(folder / f"photo_{i:02d}.png")
    return folder


def test_holdout_is_a_fixed_tenth_by_name(photos):
    paths = sorted(photos.iterdir())
    train, held = split_holdout(paths)
    assert len(held) == 2 and not set(held) & set(train)
    assert split_holdout(list(reversed(paths)))[1] == sorted(held, reverse=True)
    more = paths + [photos / "new_photo.png"]  # a photo added later never moves a held-out one to training
    assert set(held) <= set(split_holdout(more)[1])


def test_train_both_stages_resume_export_and_upscale(photos, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "srdiff", "--data", str(photos), "--out", str(out), "--preset", "tiny-4x",
              "--batch", "2", "--patch", "32", "--log-every", "1", "--ckpt-every", "2", "--val-every", "2"]
    assert main([*common, "--stage", "encoder", "--steps", "2"]) == 0
    assert main([*common, "--stage", "encoder", "--steps", "3", "--resume"]) == 0
    assert "resumed encoder at step 2" in capsys.readouterr().err
    assert main([*common, "--stage", "diffusion", "--steps", "2"]) == 0
    split = json.loads((out / "split.json").read_text())
    assert len(split["validation"]) == 2 and len(split["train"]) == 18
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("stage,step,loss") and len(rows) == 1 + 3 + 2
    assert (out / "loss.png").stat().st_size > 0

    weights = tmp_path / "tiny.safetensors"
    assert main(["train", "srdiff", "--out", str(out), "--export", str(weights), "--fp16"]) == 0
    meta = read_metadata(weights)
    assert meta["format"] == "sr-desk" and meta["architecture"] == "srdiff" and "training_data" in meta
    model, config, _ = load_model(weights)
    assert config.unet_dim == 8

    image = tmp_path / "small.png"
    Image.open(sorted(photos.iterdir())[0]).resize((16, 12)).save(image)
    result = tmp_path / "x4.png"
    assert main(["upscale", str(image), "-o", str(result), "--method", "srdiff", "--weights", str(weights),
                 "--param", "steps=2", "--seed", "1"]) == 0
    assert Image.open(result).size == (64, 48)
