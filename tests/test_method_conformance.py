"""What every method plugin must do, checked the same way for each (issue 32): its declarations are valid and
it upscales through the app; a trained method also trains, resumes, exports with its run's record and runs from
the exported file, in one stage or, for SRDiff and LDDPM, two."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_desk.cli import main
from sr_desk.core.imageio import ImageData
from sr_desk.diffusion.weights_file import read_metadata
from sr_desk.engine.plugins import PluginHost
from tests.conftest import run_method, write_smooth_photos

ROOT = Path(__file__).resolve().parents[1]

#: Two-stage trainers: method id -> (preset, patch side, the stages as extra trainer arguments, each stage's
#: first step: None, or the file the previous stage exported to --init from).
TWO_STAGES = {
    "srdiff": ("tiny-4x", 32, [["--stage", "encoder"], ["--stage", "diffusion"]], [None, None]),
    "lddpm": ("tiny", 32, [["--stage", "denoise"], ["--stage", "adversarial"]], [None, "denoise.safetensors"]),
}

#: method id -> (the trainer's patch side, CLI sizings with the size each gives a 20x12 input)
TRAINED = {
    "dtls": (32, [(["--scale", "8"], (160, 96)), (["--size", "64x40"], (64, 40))]),
    "dossr": (24, [(["--size", "64x40"], (64, 40))]),
    "diffsr": (24, [(["--size", "64x40", "--fit", "--param", "steps=2"], (64, 38)),
                    (["--scale", "2.7", "--param", "steps=2"], (54, 32))]),
}


def minimal_plugin():
    """The complete plugin docs/plugins.md shows (tests/test_docs.py keeps the two equal)."""
    path = ROOT / "tests" / "third_party_plugin" / "src" / "sr_desk_nearest" / "__init__.py"
    spec = importlib.util.spec_from_file_location("sr_desk_nearest_conformance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_minimal_plugin_of_the_guide_declares_and_upscales(rng):
    host = PluginHost(safe_mode=True)
    record = host.register(minimal_plugin(), "nearest-guide")
    assert record.ok, record.error
    method = host.method("nearest")
    image = ImageData(rgb=rng.random((6, 5, 3), dtype=np.float32))
    result = run_method(image, method, scale=3)
    assert result.size == (15, 18)


@pytest.mark.parametrize("method_id", ["srdiff", "srdiff-encoder", "dtls", "dossr", "diffsr", "lddpm"])
def test_every_built_in_method_declares_valid_parameters(method_id):
    host = PluginHost()
    host.discover()
    method = host.method(method_id)
    assert method.param_set.parse_assignments([]) is not None  # every default is valid
    assert method.to_json()["id"] == method_id


@pytest.mark.slow
@pytest.mark.parametrize("method_id", sorted(TRAINED))
def test_train_resume_export_and_upscale_from_the_cli(method_id, tmp_path, rng, capsys):
    patch, sizings = TRAINED[method_id]
    presets = importlib.import_module(f"sr_desk_plugins.{method_id}.train").PRESETS
    load_model = importlib.import_module(f"sr_desk_plugins.{method_id}.checkpoints").load_model
    photos = write_smooth_photos(tmp_path / "photos", rng, 12)
    out = tmp_path / "run"
    common = ["train", method_id, "--data", str(photos), "--out", str(out), "--preset", "tiny", "--batch", "2",
              "--patch", str(patch), "--log-every", "1", "--ckpt-every", "2", "--val-every", "2", "--no-progress"]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "3", "--resume"]) == 0
    assert f"resumed {method_id} at step 2" in capsys.readouterr().err

    weights = tmp_path / f"{method_id}.safetensors"
    assert main(["train", method_id, "--out", str(out), "--export", str(weights), "--fp16"]) == 0
    loaded = load_model(weights)
    assert loaded[1] == presets["tiny"]
    if method_id == "diffsr":
        assert loaded[2] is None  # no injection table until it is calibrated
    metadata = read_metadata(weights)
    assert metadata["steps"] == "3" and metadata["dtype"] == "float16"
    assert metadata["training_data"].startswith(f"{photos}, 90% of the photos by file name")  # the run's --data

    small = tmp_path / "small.png"
    Image.open(photos / "photo_00.png").resize((20, 12)).save(small)
    for sizing, expected in sizings:
        result = tmp_path / "out.png"
        assert main(["upscale", str(small), "-o", str(result), "--method", method_id, "--weights", str(weights),
                     *sizing]) == 0
        assert Image.open(result).size == expected


@pytest.mark.slow
@pytest.mark.parametrize("method_id", sorted(TWO_STAGES))
def test_both_stages_train_resume_export_and_upscale_from_the_cli(method_id, tmp_path, rng, capsys):
    preset, patch, stages, inits = TWO_STAGES[method_id]
    photos = write_smooth_photos(tmp_path / "photos", rng, 12)
    out = tmp_path / "run"
    common = ["train", method_id, "--data", str(photos), "--out", str(out), "--preset", preset, "--batch", "2",
              "--patch", str(patch), "--log-every", "1", "--ckpt-every", "2", "--val-every", "2", "--no-progress"]
    for stage, init in zip(stages, inits, strict=True):
        start = ["--init", str(tmp_path / init)] if init else []
        assert main([*common, *stage, *start, "--steps", "2"]) == 0
        assert main([*common, *stage, *start, "--steps", "3", "--resume"]) == 0
        assert f"resumed {stage[-1]} at step 2" in capsys.readouterr().err
        exported = tmp_path / f"{stage[-1]}.safetensors"
        assert main(["train", method_id, "--out", str(out), *stage, "--export", str(exported), "--fp16"]) == 0
        metadata = read_metadata(exported)
        assert metadata["steps"] == "3" and metadata["dtype"] == "float16"
        assert metadata["training_data"].startswith(f"{photos}, 90% of the photos by file name")
    split = json.loads((out / "split.json").read_text())  # the shared trainer's record of its hold-out
    assert len(split["validation"]) == 2 and len(split["train"]) == 10
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("stage,step,loss") and len(rows) == 1 + 3 * len(stages)
    assert (out / "loss.png").stat().st_size > 0

    small = tmp_path / "small.png"
    Image.open(photos / "photo_00.png").resize((20, 12)).save(small)
    result = tmp_path / "out.png"
    assert main(["upscale", str(small), "-o", str(result), "--method", method_id, "--weights", str(exported),
                 "--param", "steps=2" if method_id == "srdiff" else "lr_consistency=true"]) == 0
    assert Image.open(result).size == (80, 48)
