"""What every method plugin must do, checked the same way for each (issue 32): its declarations are valid and
it upscales through the app; a trained method also trains, resumes, exports with its run's record and runs from
the exported file. SRDiff and LDDPM train in two stages; their own files test those."""

from __future__ import annotations

import importlib
import importlib.util
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
